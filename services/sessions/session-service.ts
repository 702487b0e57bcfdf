import { Boom } from '@hapi/boom'
import type { ConnectionState as BaileysConnectionState, WASocket } from './baileys.js'
import pLimit from 'p-limit'
import type { Logger } from 'pino'
import QRCode from 'qrcode'
import type { ConnectReplyType } from '../../schemas/instance.js'
import type { ConnectionState, DesiredState, InstanceRecord, Store } from '../../stores/store.js'
import { DomainError, errors } from '../errors.js'
import type { SessionControl } from '../instances.js'
import type { StateRecorder } from '../state-events.js'
import { type BackoffOptions, backoffDelay } from '../backoff.js'
import { decideRecovery, type RecoveryAction, staysOnline } from './disconnect-policy.js'
import type { SessionGate, SessionHandle } from './session-gate.js'

export interface SessionServiceOptions {
  store: Store
  recordState: StateRecorder
  gate: SessionGate
  log: Logger
  /** How long reconnect waits for the WebSocket to WhatsApp to open. */
  dialTimeoutMs: number
  /** How long connect waits for the first QR code. */
  qrWaitMs: number
  /** No frame for this long and an open connection is treated as dead (zombie). */
  silenceLimitMs: number
  backoff: BackoffOptions
  resumeConcurrency: number
}

export interface SessionService extends SessionControl {
  /** Starts every instance that should be online from its saved session, a bounded number at a time. */
  resumeAll: () => Promise<void>
  /** Ends every socket without logging out (the sessions stay valid), then flushes session writes. */
  close: () => Promise<void>
}

/** Why a reconnect from the saved session is attempted: a caller asked, or the service resumes after a start. */
type ReconnectDetail = 'reconnect_requested' | 'resume'

/** One WhatsApp instance's small state machine. */
interface Runtime {
  instance: InstanceRecord
  state: ConnectionState
  detail: string | null
  statusCode: number | null
  numberJid: string | null
  handle: SessionHandle | null
  /** The socket shows a QR or pairing code: a 408 then means the QR expired, not a network error. */
  pairing: boolean
  /** A reconnect in progress; every reconnect arriving until it connects or fails joins it. */
  attempt: Promise<void> | null
  /** A caller (reconnect or connect) is waiting on this socket's first step and handles its failure itself. */
  awaited: WASocket | null
  failures: number
  badSessions: number
  retryTimer: NodeJS.Timeout | null
  watchdog: NodeJS.Timeout | null
  lastFrameAt: number
  /** Transitions are recorded and published strictly in order. */
  transitions: Promise<void>
  onQr: ((qr: string) => void) | null
}

const closeCode = (update: Partial<BaileysConnectionState>): number | null =>
  (update.lastDisconnect?.error as Boom | undefined)?.output?.statusCode ?? null

/** The real cause of a failed dial, e.g. "connect ECONNREFUSED 127.0.0.1:1", not Baileys' wrapper text. */
function reasonOf (error: unknown): string {
  const data = (error as Boom | undefined)?.data as Error | undefined
  if (data instanceof Error && data.message !== '') return data.message
  return error instanceof Error ? error.message : String(error)
}

export function createSessionService (options: SessionServiceOptions): SessionService {
  const { store, recordState, gate, log } = options
  const runtimes = new Map<string, Runtime>()
  /** Set when close begins: from then on no socket is opened and no retry is scheduled. */
  let closing = false

  function runtimeFor (instance: InstanceRecord): Runtime {
    let runtime = runtimes.get(instance.id)
    if (runtime === undefined) {
      runtime = {
        instance,
        state: instance.connection.state,
        detail: instance.connection.detail,
        statusCode: null,
        numberJid: instance.connection.numberJid,
        handle: null,
        pairing: false,
        attempt: null,
        awaited: null,
        failures: 0,
        badSessions: 0,
        retryTimer: null,
        watchdog: null,
        lastFrameAt: 0,
        transitions: Promise.resolve(),
        onQr: null
      }
      runtimes.set(instance.id, runtime)
    }
    // The latest record carries the latest proxy for the next socket.
    runtime.instance = instance
    return runtime
  }

  /** The one place a state changes: recorded in the store, then published, in order per instance. */
  function transition (runtime: Runtime, state: ConnectionState, detail: string, statusCode: number | null, extra: { desired?: DesiredState, qrCode?: string, qrCodeBase64?: string } = {}): Promise<void> {
    const previousState = runtime.state
    // A retry that fails the same way again is not news: one event per change, so an outage never floods subscribers.
    if (previousState === state && runtime.detail === detail && runtime.statusCode === statusCode && extra.qrCode === undefined && extra.desired === undefined) {
      return runtime.transitions
    }
    runtime.state = state
    runtime.detail = detail
    runtime.statusCode = statusCode
    const { instance } = runtime
    const change = { state, previousState, detail, statusCode, numberJid: runtime.numberJid, ...extra }
    runtime.transitions = runtime.transitions
      .then(async () => { await recordState(instance, change) })
      .catch((error: unknown) => { log.error({ err: error, instance: instance.name }, 'recording a state change failed') })
    return runtime.transitions
  }

  function stopTimers (runtime: Runtime): void {
    if (runtime.retryTimer !== null) clearTimeout(runtime.retryTimer)
    if (runtime.watchdog !== null) clearInterval(runtime.watchdog)
    runtime.retryTimer = null
    runtime.watchdog = null
  }

  /** Takes the current socket away from the runtime: its later events and session writes are ignored. */
  function detachSocket (runtime: Runtime): SessionHandle | null {
    const handle = runtime.handle
    runtime.handle = null
    runtime.awaited = null
    if (runtime.watchdog !== null) clearInterval(runtime.watchdog)
    runtime.watchdog = null
    handle?.retire()
    return handle
  }

  /** Ends the current socket without logging out, so its session stays valid. */
  function retireSocket (runtime: Runtime): void {
    detachSocket(runtime)?.socket.end(undefined).catch(() => {})
  }

  async function startSocket (runtime: Runtime, fresh: boolean): Promise<WASocket> {
    retireSocket(runtime)
    if (closing) throw errors.shuttingDown()
    const handle = await options.gate.openSocket(runtime.instance, { fresh })
    if (closing) {
      handle.retire()
      await handle.socket.end(undefined)
      throw errors.shuttingDown()
    }
    const { socket } = handle
    runtime.handle = handle
    runtime.lastFrameAt = Date.now()
    socket.ws.on('message', () => { runtime.lastFrameAt = Date.now() })
    // Updates are handled one after another: rendering a QR is asynchronous, and
    // a close arriving meanwhile must not be recorded before the QR it follows.
    let updates = Promise.resolve()
    socket.ev.on('connection.update', (update) => {
      updates = updates.then(async () => {
        if (runtime.handle?.socket === socket) await handleUpdate(runtime, socket, update)
      }).catch((error: unknown) => {
        log.error({ err: error, instance: runtime.instance.name }, 'handling a connection update failed')
      })
    })
    return socket
  }

  /**
   * Resolves when the transport to WhatsApp is up: the WebSocket is open and
   * the server has proven who it is. Baileys checks the server's certificate
   * chain synchronously when the handshake's first frame (the server hello)
   * arrives and, on failure, starts closing the socket in the same turn; so one
   * macrotask after that frame, an open socket means the chain was accepted.
   * Login goes on after this. A refused dial, a proxy error or an untrusted
   * certificate rejects with the real cause, from the close update.
   */
  async function transportUp (socket: WASocket, timeoutMs: number): Promise<void> {
    const { ws } = socket
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { finish(new Error(`dial timed out after ${timeoutMs} ms`)) }, timeoutMs)
      const onServerHello = (): void => { setImmediate(() => { if (ws.isOpen) finish() }) }
      const onUpdate = (update: Partial<BaileysConnectionState>): void => {
        if (update.connection === 'close') finish(update.lastDisconnect?.error ?? new Error('connection closed'))
      }
      let settled = false
      function finish (error?: unknown): void {
        if (settled) return
        settled = true
        clearTimeout(timer)
        ws.off('frame', onServerHello)
        socket.ev.off('connection.update', onUpdate)
        if (error === undefined) resolve()
        else reject(error instanceof Error ? error : new Error(String(error)))
      }
      ws.once('frame', onServerHello)
      socket.ev.on('connection.update', onUpdate)
    })
  }

  function watchForSilence (runtime: Runtime, socket: WASocket): void {
    const limit = options.silenceLimitMs
    runtime.watchdog = setInterval(() => {
      const silentFor = Date.now() - runtime.lastFrameAt
      if (silentFor <= limit) return
      log.warn({ instance: runtime.instance.name, silentFor }, 'no frame from WhatsApp within the keepalive window; closing the connection')
      socket.end(new Boom(`Connection was lost (nothing received for ${silentFor} ms)`, { statusCode: 408 })).catch(() => {})
    }, Math.max(250, Math.floor(limit / 4)))
    runtime.watchdog.unref()
  }

  async function handleUpdate (runtime: Runtime, socket: WASocket, update: Partial<BaileysConnectionState>): Promise<void> {
    if (update.qr !== undefined && runtime.pairing) {
      const waiting = runtime.onQr
      runtime.onQr = null
      if (waiting !== null) waiting(update.qr)
      else await transition(runtime, 'connecting', 'qr_ready', null, { qrCode: update.qr, qrCodeBase64: await QRCode.toDataURL(update.qr) })
    }
    if (update.connection === 'open') {
      runtime.pairing = false
      runtime.attempt = null
      runtime.failures = 0
      runtime.badSessions = 0
      runtime.numberJid = socket.user?.id ?? runtime.numberJid
      watchForSilence(runtime, socket)
      await transition(runtime, 'connected', 'logged_in', null, { desired: 'online' })
    }
    if (update.connection === 'close') {
      if (runtime.watchdog !== null) clearInterval(runtime.watchdog)
      runtime.watchdog = null
      runtime.attempt = null
      // The caller waiting on this socket's first step answers for the failure itself.
      if (runtime.awaited === socket) return
      await recover(runtime, closeCode(update))
    }
  }

  async function recover (runtime: Runtime, statusCode: number | null): Promise<void> {
    if (closing) return
    const action: RecoveryAction = decideRecovery(statusCode, { pairing: runtime.pairing, consecutiveBadSessions: runtime.badSessions })
    const attempt = runtime.failures + 1
    log.info({ instance: runtime.instance.name, code: statusCode, attempt, action: action.kind, detail: action.detail }, 'connection closed')

    if (action.kind === 'restart') {
      await transition(runtime, 'connecting', action.detail, statusCode)
      runtime.pairing = !(await gate.hasPairedSession(runtime.instance.id))
      await startSocket(runtime, false)
      return
    }
    if (action.kind === 'retry' && !runtime.pairing) {
      runtime.failures = attempt
      runtime.badSessions = action.badSession ? runtime.badSessions + 1 : 0
      const delay = backoffDelay(attempt, options.backoff)
      log.info({ instance: runtime.instance.name, code: statusCode, attempt, delay }, 'reconnecting after backoff')
      retireSocket(runtime)
      await transition(runtime, 'connecting', action.detail, statusCode)
      runtime.retryTimer = setTimeout(() => {
        runtime.retryTimer = null
        startSocket(runtime, false).catch((error: unknown) => {
          log.error({ err: error, instance: runtime.instance.name }, 'opening a socket failed')
        })
      }, delay)
      return
    }
    retireSocket(runtime)
    runtime.pairing = false
    if (action.kind === 'logged_out') {
      await gate.wipeSession(runtime.instance.id)
      runtime.numberJid = null
      await transition(runtime, 'loggedout', action.detail, statusCode, { desired: 'offline' })
      return
    }
    // A stop, or a pairing socket that lost its connection: a new QR only when asked.
    const detail = action.kind === 'retry' ? 'pairing_interrupted' : action.detail
    await transition(runtime, 'disconnected', detail, statusCode, { desired: staysOnline(action) ? undefined : 'offline' })
  }

  /**
   * Opens a socket from the saved session and resolves once the transport is
   * up. Every call arriving until the instance is connected or the attempt has
   * failed joins it. A failed dial is a 500 for the caller; an explicit
   * reconnect then rests `disconnected`, a resume hands the failure to the
   * recovery table, which keeps retrying.
   */
  function attemptReconnect (runtime: Runtime, detail: ReconnectDetail): Promise<void> {
    if (runtime.attempt !== null) return runtime.attempt
    // The refusal (no saved session, the documented 400) rejects the attempt
    // without a throw: unwinding one cost that answer about a tenth of its CPU
    // time in bench:http, far more than its instruction count suggests.
    const attempt = new Promise<void>((resolve, reject) => {
      gate.hasPairedSession(runtime.instance.id).then((paired) => {
        if (paired) dialSavedSession(runtime, detail).then(resolve, reject)
        else reject(errors.noSavedSession())
      }, reject)
    })
    // Set before the attempt's first await resolves, so concurrent calls join it.
    runtime.attempt = attempt
    attempt.catch(() => { if (runtime.attempt === attempt) runtime.attempt = null })
    return attempt
  }

  async function dialSavedSession (runtime: Runtime, detail: ReconnectDetail): Promise<void> {
    const { instance } = runtime
    stopTimers(runtime)
    runtime.pairing = false
    await transition(runtime, 'connecting', detail, null)
    const socket = await startSocket(runtime, false)
    runtime.awaited = socket
    try {
      await transportUp(socket, options.dialTimeoutMs)
    } catch (error) {
      const reason = reasonOf(error)
      log.warn({ instance: instance.name, reason, detail }, 'dial failed')
      if (runtime.awaited === socket) {
        retireSocket(runtime)
        if (detail === 'resume') await recover(runtime, (error as Boom).output?.statusCode ?? null)
        else await transition(runtime, 'disconnected', 'dial_failed', null)
      }
      throw errors.reconnectFailed(reason)
    }
    // The instance becomes desired-online with its `connected` transition.
    if (runtime.awaited === socket) runtime.awaited = null
  }

  async function waitForFirstQr (runtime: Runtime, socket: WASocket): Promise<string> {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { finish(errors.qrTimeout()) }, options.qrWaitMs)
      const onUpdate = (update: Partial<BaileysConnectionState>): void => {
        if (update.connection === 'close') finish(errors.connectFailed(reasonOf(update.lastDisconnect?.error)))
      }
      runtime.onQr = (qr) => { finish(undefined, qr) }
      function finish (error?: Error, qr?: string): void {
        clearTimeout(timer)
        runtime.onQr = null
        socket.ev.off('connection.update', onUpdate)
        if (qr !== undefined) resolve(qr)
        else reject(error)
      }
      socket.ev.on('connection.update', onUpdate)
    })
  }

  async function connect (instance: InstanceRecord, { number }: { number?: string }): Promise<ConnectReplyType> {
    const runtime = runtimeFor(instance)
    if (runtime.state === 'connected' && runtime.handle !== null) {
      return { success: true, message: 'Instance already connected', status: 'connected' }
    }
    stopTimers(runtime)
    retireSocket(runtime)
    runtime.attempt = null
    // A new pairing replaces whatever device the instance had.
    await gate.wipeSession(instance.id)
    runtime.numberJid = null
    runtime.pairing = true
    await transition(runtime, 'connecting', 'connect_requested', null)
    const socket = await startSocket(runtime, true)
    runtime.awaited = socket
    let qr: string
    try {
      qr = await waitForFirstQr(runtime, socket)
    } catch (error) {
      retireSocket(runtime)
      runtime.pairing = false
      const timedOut = error instanceof DomainError && error.kind === 'upstream_timeout'
      await transition(runtime, 'disconnected', timedOut ? 'qr_timeout' : 'connect_failed', null)
      throw error
    }
    runtime.awaited = null
    if (number !== undefined) {
      const pairingCode = await socket.requestPairingCode(number)
      await transition(runtime, 'connecting', 'pairing_code_ready', null)
      return { success: true, message: 'Pairing code generated', pairingCode, status: 'pairing' }
    }
    const qrCodeBase64 = await QRCode.toDataURL(qr)
    await transition(runtime, 'connecting', 'qr_ready', null, { qrCode: qr, qrCodeBase64 })
    return { success: true, message: 'QR code generated', qrCode: qr, qrCodeBase64, status: 'qr' }
  }

  /** Logs the device out on WhatsApp when it is connected, then forgets the session. */
  async function signOut (runtime: Runtime): Promise<void> {
    stopTimers(runtime)
    runtime.attempt = null
    const connected = runtime.state === 'connected'
    const handle = detachSocket(runtime)
    if (handle !== null && connected) {
      await handle.socket.logout().catch((error: unknown) => {
        log.warn({ err: error, instance: runtime.instance.name }, 'logging out on WhatsApp failed; the session is removed anyway')
      })
    } else {
      await handle?.socket.end(undefined).catch(() => {})
    }
    runtime.pairing = false
    runtime.numberJid = null
    await gate.wipeSession(runtime.instance.id)
  }

  return {
    connect,

    // The attempt itself, not an async wrapper around it: a refusal (no saved
    // session) then reaches the caller as one rejection, not a rethrow per frame.
    reconnect: (instance) => attemptReconnect(runtimeFor(instance), 'reconnect_requested'),

    async logout (instance) {
      const runtime = runtimeFor(instance)
      await signOut(runtime)
      await transition(runtime, 'loggedout', 'logout_requested', null, { desired: 'offline' })
    },

    async remove (instance) {
      const runtime = runtimeFor(instance)
      await signOut(runtime)
      await transition(runtime, 'loggedout', 'deleted', null, { desired: 'offline' })
      runtimes.delete(instance.id)
      await store.deleteInstance(instance.id)
    },

    async resumeAll () {
      const limit = pLimit(options.resumeConcurrency)
      const candidates = (await store.listAllInstances()).filter(instance => instance.desired === 'online')
      await Promise.all(candidates.map(async instance => await limit(async () => {
        // A little jitter, so a fleet restarting together does not reconnect in lockstep.
        await new Promise(resolve => setTimeout(resolve, Math.random() * 50))
        if (closing) return
        await attemptReconnect(runtimeFor(instance), 'resume')
      }).catch((error: unknown) => { log.warn({ err: error, instance: instance.name }, 'resuming failed') })))
    },

    async close () {
      closing = true
      for (const runtime of runtimes.values()) {
        stopTimers(runtime)
        const hadSocket = runtime.handle !== null
        retireSocket(runtime)
        if (hadSocket) void transition(runtime, 'disconnected', 'shutdown', null)
      }
      await Promise.all([...runtimes.values()].map(async runtime => { await runtime.transitions }))
      await gate.flush()
    }
  }
}
