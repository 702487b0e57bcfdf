import type { onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { AuthPolicy, AuthService } from '../services/auth.js'
import { hookList } from './route-hooks.js'

/**
 * Refuses callers a route's policy does not admit, with the documented 401
 * `Invalid token`. A plugin of its own, registered after the rate limiter, so
 * that on each route its hook comes after the limiter's (onRoute hooks run in
 * registration order): a call with a wrong token is counted before it is
 * refused, so guessing tokens spends a budget too, and it is refused before
 * its body is read or validated. A callback hook in the last onRequest slot,
 * rather than a preParsing hook, so no further hook chain runs per request.
 */
export default fp(async (app) => {
  const auth: AuthService = app.auth
  const authorizeFor = (policy: AuthPolicy): onRequestHookHandler => (request, _reply, done) => {
    try {
      auth.authorize(request.caller, policy)
    } catch (error) {
      done(error as Error)
      return
    }
    done()
  }
  app.addHook('onRoute', (route) => {
    const policy = route.config?.auth
    if (policy === undefined) return
    route.onRequest = [...hookList(route.onRequest), authorizeFor(policy)]
  })
}, { name: 'authorize', dependencies: ['auth', 'rate-limit'] })
