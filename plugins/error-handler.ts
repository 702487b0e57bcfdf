import fastJsonStringify from 'fast-json-stringify'
import type { FastifyError, FastifyReply } from 'fastify'
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
const envelopeWith = (message: string): string => serializeEnvelope({ success: false, error: { message } })

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
    envelope = envelopeWith(error.message)
    if (Object.isFrozen(error)) frozenEnvelopes.set(error, envelope)
  }
  return envelope
}

function sendEnvelope (reply: FastifyReply, status: number, envelope: string): FastifyReply {
  return reply.code(status).type(JSON_CONTENT_TYPE).send(envelope)
}

function sendDomainError (reply: FastifyReply, error: DomainError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', error.retryAfterSeconds)
  return sendEnvelope(reply, STATUS_OF[error.kind], envelopeOf(error))
}

/**
 * One envelope for every failure, `{"success":false,"error":{"message"}}`:
 * domain errors, validation and body-parsing errors, unknown routes and bugs.
 * A 500 from a bug is logged in full and answered without its details.
 */
export default fp(async (app) => {
  app.setErrorHandler((error: FastifyError | DomainError, request, reply) => {
    if (error instanceof DomainError) return sendDomainError(reply, error)
    if (error.validation !== undefined) return sendEnvelope(reply, 400, envelopeWith(error.message))
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) return sendEnvelope(reply, error.statusCode, envelopeWith(error.message))
    request.log.error({ err: error }, 'unhandled error')
    return sendEnvelope(reply, 500, envelopeWith('Internal server error'))
  })

  app.setNotFoundHandler((request, reply) => sendDomainError(reply, errors.routeNotFound(request.method, request.url.split('?')[0] ?? '')))
}, { name: 'error-handler' })
