/**
 * Every failure a caller can see is one of these. Services throw them; the
 * HTTP layer maps `kind` to a status code in one place (plugins/error-handler.ts),
 * so a message is never duplicated between a service and a route.
 */
export type DomainErrorKind =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'rate_limited'
  | 'upstream_failed'
  | 'upstream_timeout'
  | 'unavailable'

export class DomainError extends Error {
  readonly kind: DomainErrorKind
  /** When trying again can succeed, and not before (HTTP: Retry-After). */
  readonly retryAfterSeconds: number | undefined

  constructor (kind: DomainErrorKind, message: string, options: { retryAfterSeconds?: number } = {}) {
    // An expected outcome, not a bug: capturing a stack would cost more than
    // answering a 401 or a 404, and nothing ever reads it.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = stackTraceLimit
    this.name = 'DomainError'
    this.kind = kind
    this.retryAfterSeconds = options.retryAfterSeconds
  }
}

/**
 * An outcome without details is one shared, frozen error: it carries nothing
 * of the call that met it (no stack either), and building an Error costs more
 * than the rest of a 400 answer.
 */
function shared (kind: DomainErrorKind, message: string): () => DomainError {
  const error = Object.freeze(new DomainError(kind, message))
  return () => error
}

export const errors = {
  invalidToken: shared('unauthorized', 'Invalid token'),
  instanceTokenMismatch: shared('forbidden', 'Instance token does not match this instance'),
  instanceNotFound: shared('not_found', 'Instance not found'),
  instanceNameTaken: shared('conflict', 'Instance name already exists'),
  instanceTokenTaken: shared('conflict', 'Instance token already in use'),
  instanceQuotaExceeded: shared('forbidden', 'Account instance quota exceeded'),
  noSavedSession: shared('bad_request', 'Instance has no saved session, call /connect first'),
  reconnectFailed: (reason: string) => new DomainError('upstream_failed', `Failed to reconnect: ${reason}`),
  connectFailed: (reason: string) => new DomainError('upstream_failed', `Failed to connect: ${reason}`),
  qrTimeout: shared('upstream_timeout', 'Timed out waiting for QR code'),
  webhookNotFound: shared('not_found', 'Webhook not found'),
  tooManyWebhooks: (limit: number) => new DomainError('bad_request', `At most ${limit} enabled webhooks per instance`),
  webhookUrlRefused: (reason: string) => new DomainError('bad_request', `Webhook URL refused: ${reason}`),
  rateLimited: (retryAfterSeconds: number) => new DomainError('rate_limited', 'Rate limit exceeded. Try again later.', { retryAfterSeconds }),
  routeNotFound: (method: string, url: string) => new DomainError('not_found', `Route ${method}:${url} not found`),
  shuttingDown: shared('unavailable', 'Service is shutting down'),
  busy: shared('unavailable', 'Too many concurrent changes to this instance, try again')
} as const
