import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import LocalStore from '@fastify/rate-limit/store/LocalStore.js'
import RedisStore from '@fastify/rate-limit/store/RedisStore.js'
import fp from 'fastify-plugin'
import { errors } from '../services/errors.js'

const WINDOW_MS = 60_000

/**
 * The plugin's own counters, reporting when the window resets in place of how
 * long it has left. The plugin writes `X-RateLimit-Reset` as the ttl in whole
 * seconds, rounded up; the RyzeAPI contract wants the reset's Unix time. With
 * the reset's time (epoch ms) as the ttl, the header it writes is that Unix
 * time, and no reply needs rewriting (an onSend hook did that before, on
 * every reply). In memory the reset is fixed for the whole window; Redis
 * reports the time left, so the round trip can move it across a second.
 * The plugin writes a 429's Retry-After from the same figure, so
 * errorResponseBuilder turns that back into seconds.
 */
class ResetTimeStore implements FastifyRateLimitStore {
  constructor (private readonly counters: FastifyRateLimitStore) {}

  incr (...[key, callback, timeWindow, max]: Parameters<FastifyRateLimitStore['incr']>): void {
    this.counters.incr(key, (error, counted) => {
      callback(error, counted === undefined ? undefined : { current: counted.current, ttl: Date.now() + counted.ttl })
    }, timeWindow, max)
  }

  child (routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
    return new ResetTimeStore(this.counters.child(routeOptions))
  }
}

/**
 * A fixed 60 s window per caller: the hash of a valid token, else the client
 * IP. With Redis the counters are shared by every replica. Routes opt out with
 * `config: { rateLimit: false }` (health probes) or set their own `max`.
 */
export default fp(async (app) => {
  const counters = app.redis === null
    ? new LocalStore(false, false, 100_000)
    : new RedisStore(false, false, app.redis, `${app.config.REDIS_PREFIX}ratelimit:`)
  await app.register(rateLimit, {
    global: true,
    max: app.config.RATE_LIMIT_MAX,
    timeWindow: WINDOW_MS,
    // The plugin builds its store from a class, itself.
    store: class extends ResetTimeStore { constructor () { super(counters) } },
    skipOnError: false,
    // A token's digest is the key as it is (64 hex digits, so never mistaken for an `ip:` key):
    // the string is the one auth already hashed for its own lookup, and it is not copied per request.
    keyGenerator: (request) => request.callerKey ?? `ip:${request.ip}`,
    errorResponseBuilder: (_request, { ttl: resetAt }) => errors.rateLimited(Math.max(1, Math.ceil((resetAt - Date.now()) / 1000)))
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis', 'auth'] })
