import makeWASocket, { BufferJSON, type WASocket } from './baileys.js'
import type { Logger } from 'pino'
import type { InstanceRecord, SessionWrite, Store } from '../../stores/store.js'
import type { SecretBox } from '../secret-box.js'
import { loadAuthState, type SessionStorage } from './auth-state.js'
import { proxyAgentFor } from './proxy-agent.js'
import { withTransactionScopedStorage } from './transaction-storage.js'

export interface SocketSettings {
  wsUrl: string
  keepAliveIntervalMs: number
  connectTimeoutMs: number
  defaultQueryTimeoutMs: number
  qrTimeoutMs?: number
  logLevel: string
}

export interface SessionHandle {
  socket: WASocket
  /** After this, writes from the socket are dropped: a replaced or logged-out socket can never overwrite the session. */
  retire: () => void
}

export interface SessionGate {
  openSocket: (instance: InstanceRecord, options: { fresh: boolean }) => Promise<SessionHandle>
  /** True when the stored creds belong to a paired device (creds.me is set). */
  hasPairedSession: (instanceId: string) => Promise<boolean>
  /** Waits for the instance's queued writes, then removes its session. */
  wipeSession: (instanceId: string) => Promise<void>
  /** Resolves when every queued session write is durable. */
  flush: () => Promise<void>
}

function isPaired (creds: string | null): boolean {
  return creds !== null && (JSON.parse(creds, BufferJSON.reviver) as { me?: { id?: string } }).me?.id !== undefined
}

/**
 * The single door between WhatsApp sockets and stored sessions: every socket
 * is started here and every auth-state write passes through here, in order
 * per instance. (A later ownership lease checks its fencing token here.)
 */
export function createSessionGate ({ store, secretBox, log, settings }: {
  store: Store
  secretBox: SecretBox
  log: Logger
  settings: SocketSettings
}): SessionGate {
  const writeQueues = new Map<string, Promise<void>>()

  function enqueueWrite (instanceId: string, write: SessionWrite): Promise<void> {
    const previous = writeQueues.get(instanceId) ?? Promise.resolve()
    const next = previous.then(async () => { await store.writeSession(instanceId, write) })
    // The queue continues after a failed write; the failure still reaches the caller that made it.
    const tail = next.catch((error: unknown) => { log.error({ err: error, instanceId }, 'session write failed') })
    writeQueues.set(instanceId, tail)
    void tail.then(() => { if (writeQueues.get(instanceId) === tail) writeQueues.delete(instanceId) })
    return next
  }

  /**
   * Runs a session read (or the wipe) once the instance's queued writes are
   * durable. Most calls find none queued, and then do not wait a turn for them.
   */
  function afterWrites<T> (instanceId: string, action: () => Promise<T>): Promise<T> {
    const pending = writeQueues.get(instanceId)
    return pending === undefined ? action() : pending.then(action)
  }

  function storageFor (instanceId: string, isActive: () => boolean): SessionStorage {
    return {
      readCreds: () => afterWrites(instanceId, () => store.readSessionCreds(instanceId)),
      readKeys: (names) => afterWrites(instanceId, () => store.readSessionKeys(instanceId, names)),
      write: async (write) => { if (isActive()) await enqueueWrite(instanceId, write) }
    }
  }

  return {
    async openSocket (instance, { fresh }) {
      let active = true
      const { state, saveCreds } = await loadAuthState(storageFor(instance.id, () => active), { fresh })
      const agent = proxyAgentFor(instance.proxy, secretBox)
      const socket = withTransactionScopedStorage(() => makeWASocket({
        auth: state,
        waWebSocketUrl: settings.wsUrl,
        agent,
        fetchAgent: agent,
        logger: log.child({ instance: instance.name }, { level: settings.logLevel }),
        keepAliveIntervalMs: settings.keepAliveIntervalMs,
        connectTimeoutMs: settings.connectTimeoutMs,
        defaultQueryTimeoutMs: settings.defaultQueryTimeoutMs,
        qrTimeout: settings.qrTimeoutMs,
        markOnlineOnConnect: false,
        syncFullHistory: false,
        shouldSyncHistoryMessage: () => false,
        generateHighQualityLinkPreview: false
      }))
      socket.ev.on('creds.update', () => {
        saveCreds().catch((error: unknown) => { log.error({ err: error, instance: instance.name }, 'saving creds failed') })
      })
      return { socket, retire: () => { active = false } }
    },

    hasPairedSession: (instanceId) => afterWrites(instanceId, () => store.readSessionCreds(instanceId)).then(isPaired),

    wipeSession: (instanceId) => afterWrites(instanceId, () => store.deleteSession(instanceId)),

    async flush () {
      await Promise.all([...writeQueues.values()])
    }
  }
}
