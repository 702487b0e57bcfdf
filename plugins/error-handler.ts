import fastJsonStringify from 'fast-json-stringify'
import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { ErrorEnvelope } from '../schemas/common.js'
import { DomainError, type DomainErrorKind, errors } from '../services/errors.js'

const STATUS_OF: Record<DomainErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  upstream_failed: 500,
  upstream_timeout: 504,
  unavailable: 503
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8'
const serializeEnvelope = fastJsonStringify(ErrorEnvelope)

/**
 * The envelope of each frozen error, serialized once: services/errors.ts
 * shares one frozen error per outcome without details (a bad token, a
 * reconnect with no saved session...), the common refusals, and a frozen
 * error's envelope can never change.
 */
const frozenEnvelopes = new WeakMap<DomainError, string>()

function envelopeOf (error: DomainError): string {
  let envelope = frozenEnvelopes.get(error)
  if (envelope === undefined) {
    envelope = serializeEnvelope({ success: false, error: { message: error.message } })
    if (Object.isFrozen(error)) frozenEnvelopes.set(error, envelope)
  }
  return envelope
}

/**
 * One envelope for every failure, `{"success":false,"error":{"message"}}`:
 * domain errors, validation and body-parsing errors, unknown routes and bugs.
 * A 500 from a bug is logged in full and answered without its details.
 */
export default fp(async (app) => {
  app.setErrorHandler((error: FastifyError | DomainError, request, reply) => {
    if (error instanceof DomainError) {
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', error.retryAfterSeconds)
      return reply.code(STATUS_OF[error.kind]).type(JSON_CONTENT_TYPE).send(envelopeOf(error))
    }
    let status: number
    let message: string
    if (error.validation !== undefined) {
      status = 400
      message = error.message
    } else if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode
      message = error.message
    } else {
      request.log.error({ err: error }, 'unhandled error')
      status = 500
      message = 'Internal server error'
    }
    return reply.code(status).send({ success: false, error: { message } })
  })

  app.setNotFoundHandler((request, reply) => {
    const { message } = errors.routeNotFound(request.method, request.url.split('?')[0] ?? '')
    return reply.code(404).send({ success: false, error: { message } })
  })
}, { name: 'error-handler' })
