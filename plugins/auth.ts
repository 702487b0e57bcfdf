import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { type AuthPolicy, type AuthService, type Caller, createAuthService } from '../services/auth.js'
import { configuredOrLocalSecret } from '../services/local-secrets.js'
import { hashToken } from '../services/tokens.js'
import { hookList } from './route-hooks.js'

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService
  }
  interface FastifyRequest {
    /** The owner of the presented token, or null when none or an unknown one was presented. */
    caller: Caller | null
    /** SHA-256 of the presented token when it was valid: the rate-limit key, never the token itself. */
    callerKey: string | null
  }
  interface FastifyContextConfig {
    /** Who may call the route; routes without it (health probes) are public. */
    auth?: AuthPolicy
  }
}

/** Header `token`, else `Authorization: Bearer`, else `?token=` (browsers cannot set WebSocket headers). */
function presentedToken (request: FastifyRequest): string | null {
  const header = request.headers.token
  if (typeof header === 'string' && header !== '') return header
  const authorization = request.headers.authorization
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match?.[1] !== undefined) return match[1]
  }
  const query = (request.query as Record<string, unknown> | undefined)?.token
  return typeof query === 'string' && query !== '' ? query : null
}

function assignCaller (request: FastifyRequest, caller: Caller | null, tokenHash: string): void {
  request.caller = caller
  if (caller !== null) request.callerKey = tokenHash
}

export default fp(async (app) => {
  const adminToken = await configuredOrLocalSecret(app.config.ADMIN_TOKEN, app.config.DATA_DIR, 'admin-token')
  if (adminToken.path !== null) {
    app.log.info({ path: adminToken.path }, adminToken.created ? 'generated an admin token; read it from this file' : 'using the admin token stored in this file')
  }

  const auth: AuthService = createAuthService({ store: app.store, adminToken: adminToken.value })
  app.decorate('auth', auth)
  app.decorateRequest('caller', null)
  app.decorateRequest('callerKey', null)

  // Identify early and reject late: the rate limiter (an onRequest hook of each
  // route, added after this one) counts by caller, and only then does the
  // authorize plugin refuse unauthenticated calls. The hook goes on each route
  // with a policy when it is declared, so public routes (the health probes)
  // run none and no request has to look its route's policy up.
  // A callback hook: most calls come with a token known in process, and then
  // no promise is made at all.
  const identify: onRequestHookHandler = (request, _reply, done) => {
    const token = presentedToken(request)
    if (token === null) { done(); return }
    const tokenHash = hashToken(token)
    const known = auth.remembered(tokenHash)
    if (known !== undefined) {
      assignCaller(request, known, tokenHash)
      done()
      return
    }
    auth.identify(tokenHash).then((caller) => { assignCaller(request, caller, tokenHash); done() }, done)
  }
  app.addHook('onRoute', (route) => {
    if (route.config?.auth === undefined) return
    route.onRequest = [identify, ...hookList(route.onRequest)]
  })
}, { name: 'auth', dependencies: ['config', 'store'] })
