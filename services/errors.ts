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

  constructor (kind: DomainErrorKind, message: string) {
    // An expected outcome, not a bug: capturing a stack would cost more than
    // answering a 401 or a 404, and nothing ever reads it.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = stackTraceLimit
    this.name = 'DomainError'
    this.kind = kind
  }
}

export const errors = {
  invalidToken: () => new DomainError('unauthorized', 'Invalid token'),
  instanceTokenMismatch: () => new DomainError('forbidden', 'Instance token does not match this instance'),
  instanceNotFound: () => new DomainError('not_found', 'Instance not found'),
  instanceNameTaken: () => new DomainError('conflict', 'Instance name already exists'),
  instanceTokenTaken: () => new DomainError('conflict', 'Instance token already in use'),
  instanceQuotaExceeded: () => new DomainError('forbidden', 'Account instance quota exceeded'),
  noSavedSession: () => new DomainError('bad_request', 'Instance has no saved session, call /connect first'),
  reconnectFailed: (reason: string) => new DomainError('upstream_failed', `Failed to reconnect: ${reason}`),
  connectFailed: (reason: string) => new DomainError('upstream_failed', `Failed to connect: ${reason}`),
  qrTimeout: () => new DomainError('upstream_timeout', 'Timed out waiting for QR code'),
  webhookNotFound: () => new DomainError('not_found', 'Webhook not found'),
  tooManyWebhooks: (limit: number) => new DomainError('bad_request', `At most ${limit} enabled webhooks per instance`),
  webhookUrlRefused: (reason: string) => new DomainError('bad_request', `Webhook URL refused: ${reason}`),
  rateLimited: () => new DomainError('rate_limited', 'Rate limit exceeded. Try again later.'),
  routeNotFound: (method: string, url: string) => new DomainError('not_found', `Route ${method}:${url} not found`),
  shuttingDown: () => new DomainError('unavailable', 'Service is shutting down'),
  busy: () => new DomainError('unavailable', 'Too many concurrent changes to this instance, try again')
} as const
