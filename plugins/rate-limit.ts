import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { errors } from '../services/errors.js'

const WINDOW_MS = 60_000
const RESET_HEADER = 'x-ratelimit-reset'

/**
 * A fixed 60 s window per caller: the hash of a valid token, else the client
 * IP. With Redis the counters are shared by every replica. Routes opt out with
 * `config: { rateLimit: false }` (health probes) or set their own `max`.
 */
export default fp(async (app) => {
  await app.register(rateLimit, {
    global: true,
    max: app.config.RATE_LIMIT_MAX,
    timeWindow: WINDOW_MS,
    cache: 100_000,
    redis: app.redis ?? undefined,
    nameSpace: `${app.config.REDIS_PREFIX}ratelimit:`,
    skipOnError: false,
    // A token's digest is the key as it is (64 hex digits, so never mistaken for an `ip:` key):
    // the string is the one auth already hashed for its own lookup, and it is not copied per request.
    keyGenerator: (request) => request.callerKey ?? `ip:${request.ip}`,
    errorResponseBuilder: () => errors.rateLimited()
  })

  // @fastify/rate-limit sends seconds until the reset; the RyzeAPI contract is the reset's Unix time.
  // A callback hook, not an async one: it runs on every reply and an extra promise there is measurable.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const secondsLeft = reply.getHeader(RESET_HEADER)
    if (secondsLeft !== undefined) reply.header(RESET_HEADER, Math.floor(Date.now() / 1000) + Number(secondsLeft))
    done(null, payload)
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis', 'auth'] })
