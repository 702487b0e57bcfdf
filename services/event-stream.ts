import { randomUUID } from 'node:crypto'
import type { EventBus } from '../bus/bus.js'
import { type InstanceStateEvent, toEnvelope } from '../bus/events.js'
import { INSTANCE_NAME_PATTERN } from '../schemas/instance.js'
import type { InstanceRecord, Store } from '../stores/store.js'
import type { AuthService, TenantCaller } from './auth.js'
import { DomainError } from './errors.js'

/** What the stream needs from one connected client (a WebSocket, in plugins/websocket.ts). */
export interface StreamPeer {
  /** One UTF-8 JSON text frame; the same buffer goes to every client, encoded once. */
  send: (frame: Buffer) => void
  /** Bytes queued for the client and not yet written to the network. */
  bufferedAmount: () => number
  close: (code: number, reason: string) => void
}

export interface StreamSession {
  /** A frame from the client: `{"action":"subscribe"|"unsubscribe","instances":[…]}`. */
  receive: (text: string) => void
  /** The client is gone. */
  end: () => void
}

export interface EventStreamOptions {
  bus: EventBus
  store: Store
  auth: AuthService
  baseUrl: string
  /** Past this many queued bytes a client is closed with 1013 instead of slowing anyone else down. */
  maxBufferedBytes: number
}

export type EventStream = ReturnType<typeof createEventStream>

const SLOW_CONSUMER = 1013
const INSTANCE_NAME = new RegExp(INSTANCE_NAME_PATTERN)

interface Session {
  caller: TenantCaller
  peer: StreamPeer
  /** null: every instance the caller may see. */
  included: Set<string> | null
  excluded: Set<string>
  /** Highest event number already sent per instance id: snapshots and live events never repeat. */
  sentSeq: Map<string, number>
  /** Live events that arrived while the snapshot was being read. */
  pending: InstanceStateEvent[] | null
  /** Frames from the client are handled one after another, after the snapshot. */
  work: Promise<void>
  open: boolean
}

/**
 * Fans instance.state events out to connected clients: a snapshot of every
 * visible instance first, then live events in order, each client seeing only
 * its own account's (or its own instance's) events.
 */
export function createEventStream ({ bus, store, auth, baseUrl, maxBufferedBytes }: EventStreamOptions) {
  const sessionsByAccount = new Map<string, Set<Session>>()

  const visible = (session: Session, event: Pick<InstanceStateEvent, 'instanceId' | 'instance'>): boolean => {
    if (session.caller.kind === 'instance' && session.caller.instanceId !== event.instanceId) return false
    if (session.excluded.has(event.instance)) return false
    return session.included === null || session.included.has(event.instance)
  }

  function send (session: Session, frame: Buffer): void {
    if (!session.open) return
    if (session.peer.bufferedAmount() > maxBufferedBytes) {
      close(session, SLOW_CONSUMER, `Slow consumer: more than ${maxBufferedBytes} bytes waiting`)
      return
    }
    session.peer.send(frame)
  }

  const encode = (value: object): Buffer => Buffer.from(JSON.stringify(value))

  function deliver (session: Session, event: InstanceStateEvent, frame: Buffer): void {
    if ((session.sentSeq.get(event.instanceId) ?? 0) >= event.seq) return
    session.sentSeq.set(event.instanceId, event.seq)
    send(session, frame)
  }

  function close (session: Session, code: number, reason: string): void {
    if (!session.open) return
    forget(session)
    session.peer.close(code, reason)
  }

  function forget (session: Session): void {
    session.open = false
    const sessions = sessionsByAccount.get(session.caller.accountId)
    sessions?.delete(session)
    if (sessions?.size === 0) sessionsByAccount.delete(session.caller.accountId)
  }

  const unsubscribe = bus.subscribe(event => {
    const sessions = sessionsByAccount.get(event.accountId)
    if (sessions === undefined) return
    let frame: Buffer | undefined
    for (const session of sessions) {
      if (!visible(session, event)) continue
      if (session.pending !== null) {
        session.pending.push(event)
        continue
      }
      frame ??= encode(toEnvelope(event, baseUrl))
      deliver(session, event, frame)
    }
  })

  function snapshotOf (instance: InstanceRecord): InstanceStateEvent {
    return {
      id: randomUUID(),
      seq: instance.seq,
      accountId: instance.accountId,
      instanceId: instance.id,
      instance: instance.name,
      state: instance.connection.state,
      previousState: null,
      detail: 'snapshot',
      statusCode: null,
      at: instance.updatedAt
    }
  }

  /** Sends the current state of every visible instance that has not been sent yet. */
  async function sendSnapshots (session: Session): Promise<void> {
    const { caller } = session
    let instances: InstanceRecord[]
    if (caller.kind === 'instance') {
      const own = await store.getInstance(caller.instanceId)
      instances = own === null ? [] : [own]
    } else if (session.included !== null) {
      const found = await Promise.all([...session.included].map(async name => await store.findInstanceByName(caller.accountId, name)))
      instances = found.filter((instance): instance is InstanceRecord => instance !== null)
    } else {
      instances = await store.listInstances(caller.accountId)
    }
    for (const instance of instances) {
      if (!visible(session, { instanceId: instance.id, instance: instance.name })) continue
      // A snapshot carries the current number without using one up: the next live event is seq + 1.
      const snapshot = snapshotOf(instance)
      if ((session.sentSeq.get(instance.id) ?? -1) >= snapshot.seq) continue
      session.sentSeq.set(instance.id, snapshot.seq)
      send(session, encode(toEnvelope(snapshot, baseUrl)))
    }
  }

  function reply (session: Session, frame: object): void {
    send(session, encode(frame))
  }

  async function handleFrame (session: Session, text: string): Promise<void> {
    let frame: unknown
    try {
      frame = JSON.parse(text)
    } catch {
      reply(session, { event: 'error', error: { message: 'Frames must be JSON' } })
      return
    }
    const { action, instances } = (frame ?? {}) as { action?: unknown, instances?: unknown }
    if ((action !== 'subscribe' && action !== 'unsubscribe') || !Array.isArray(instances) ||
      !instances.every((name): name is string => typeof name === 'string' && INSTANCE_NAME.test(name))) {
      reply(session, { event: 'error', error: { message: 'Expected {"action":"subscribe"|"unsubscribe","instances":["<name>", …]}' } })
      return
    }
    try {
      for (const name of instances) auth.assertInstanceScope(session.caller, name)
    } catch (error) {
      if (!(error instanceof DomainError)) throw error
      reply(session, { event: 'error', action, error: { message: error.message } })
      return
    }
    for (const name of instances) {
      if (action === 'subscribe') {
        session.excluded.delete(name)
        session.included?.add(name)
      } else {
        session.excluded.add(name)
        session.included?.delete(name)
      }
    }
    reply(session, { event: 'ack', action, instances })
    if (action === 'subscribe') await sendSnapshots(session)
  }

  return {
    /**
     * Starts streaming to a client: registers it at once (so no event is
     * missed), sends the snapshot, then whatever arrived meanwhile.
     */
    open (peer: StreamPeer, caller: TenantCaller, names: string[] | null): StreamSession {
      const session: Session = {
        caller,
        peer,
        included: names === null ? null : new Set(names),
        excluded: new Set(),
        sentSeq: new Map(),
        pending: [],
        work: Promise.resolve(),
        open: true
      }
      let sessions = sessionsByAccount.get(caller.accountId)
      if (sessions === undefined) sessionsByAccount.set(caller.accountId, sessions = new Set())
      sessions.add(session)

      session.work = sendSnapshots(session).then(() => {
        const pending = session.pending ?? []
        session.pending = null
        for (const event of pending) {
          if (visible(session, event)) deliver(session, event, encode(toEnvelope(event, baseUrl)))
        }
      }).catch(() => { close(session, 1011, 'Could not read the current state') })

      return {
        receive (text) {
          session.work = session.work.then(async () => { await handleFrame(session, text) })
            .catch(() => { close(session, 1011, 'Internal error') })
        },
        end () { forget(session) }
      }
    },

    /** Closes every client with `code`, e.g. 1001 when the server goes away. */
    closeAll (code: number, reason: string) {
      for (const sessions of [...sessionsByAccount.values()]) {
        for (const session of [...sessions]) close(session, code, reason)
      }
    },

    stop () {
      unsubscribe()
    }
  }
}
