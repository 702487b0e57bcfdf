/**
 * What to do when a WhatsApp connection closes: one table from Baileys'
 * DisconnectReason / failure code to an action. Nothing else in the service
 * decides whether to retry.
 */
export type RecoveryAction =
  /** Open a new socket at once; a normal step (e.g. after pairing), not a failure. */
  | { kind: 'restart', detail: string }
  /** Open a new socket after a backoff delay, for as long as the instance should be online. */
  | { kind: 'retry', detail: string, badSession: boolean }
  /** The device is no longer linked: wipe the session, state `loggedout`, never retry. */
  | { kind: 'logged_out', detail: string }
  /** Stay `disconnected` until a user asks again. */
  | { kind: 'stop', detail: string }

export interface CloseContext {
  /** The socket was showing a QR or pairing code (no saved session yet). */
  pairing: boolean
  /** Bad-session closes in a row before this one, with no successful login between. */
  consecutiveBadSessions: number
}

/** The circuit breaker: this many bad-session closes in a row and the instance stops retrying. */
export const BAD_SESSION_LIMIT = 5

export function decideRecovery (statusCode: number | null, context: CloseContext): RecoveryAction {
  const action = actionFor(statusCode, context.pairing)
  if (action.kind === 'retry' && action.badSession && context.consecutiveBadSessions + 1 >= BAD_SESSION_LIMIT) {
    return { kind: 'stop', detail: 'failed' }
  }
  return action
}

function actionFor (statusCode: number | null, pairing: boolean): RecoveryAction {
  switch (statusCode) {
    case 515: return { kind: 'restart', detail: 'restart_required' }
    // 408 is both "QR refs ended" and a failed dial or lost connection; only pairing tells them apart.
    case 408: return pairing ? { kind: 'stop', detail: 'qr_timeout' } : { kind: 'retry', detail: 'network_error', badSession: false }
    case 428: return { kind: 'retry', detail: 'connection_closed', badSession: false }
    case 503: return { kind: 'retry', detail: 'service_unavailable', badSession: false }
    case 500: return { kind: 'retry', detail: 'bad_session', badSession: true }
    case 401: return { kind: 'logged_out', detail: 'logged_out' }
    case 403: return { kind: 'logged_out', detail: 'forbidden' }
    case 406: return { kind: 'logged_out', detail: 'banned' }
    case 402: return { kind: 'stop', detail: 'temp_banned' }
    case 411: return { kind: 'stop', detail: 'multidevice_mismatch' }
    case 440: return { kind: 'stop', detail: 'connection_replaced' }
    default: return { kind: 'retry', detail: 'network_error', badSession: false }
  }
}

/** Desired state after an action: terminal closes take the instance offline so a restart does not resume it. */
export function staysOnline (action: RecoveryAction): boolean {
  return action.kind === 'restart' || action.kind === 'retry'
}
