import type { Writable } from 'node:stream'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AppConfig } from './config/index.js'
import accountsPlugin from './plugins/accounts.js'
import authPlugin from './plugins/auth.js'
import authorizePlugin from './plugins/authorize.js'
import configPlugin from './plugins/config.js'
import errorHandlerPlugin from './plugins/error-handler.js'
import eventStreamPlugin from './plugins/event-stream.js'
import eventBusPlugin from './plugins/event-bus.js'
import instancesPlugin from './plugins/instances.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import redisPlugin from './plugins/redis.js'
import secretBoxPlugin from './plugins/secret-box.js'
import sessionsPlugin from './plugins/sessions.js'
import stateEventsPlugin from './plugins/state-events.js'
import storePlugin from './plugins/store.js'
import webhookDeliveryPlugin from './plugins/webhook-delivery.js'
import webhooksPlugin from './plugins/webhooks.js'
import websocketPlugin from './plugins/websocket.js'
import accountRoutes from './routes/accounts.js'
import eventRoutes from './routes/events.js'
import healthRoutes from './routes/health.js'
import instanceRoutes from './routes/instances.js'
import webhookRoutes from './routes/webhooks.js'

export interface BuildAppOptions {
  config: AppConfig
  /** Where logs go (tests capture them); stdout when absent. */
  logStream?: Writable
}

/** `?token=` exists for browsers' WebSockets; it must never reach a log line. */
function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]')
}

function loggerOptions ({ config, logStream }: BuildAppOptions): FastifyServerOptions['logger'] {
  // Silent means no logger at all: with one, Fastify gives every request a
  // child logger and 'finish' listeners for its request-completed line, about
  // a tenth of a small request's CPU, even when nothing is ever written.
  if (config.LOG_LEVEL === 'silent') return false
  return {
    level: config.LOG_LEVEL,
    ...(logStream === undefined ? {} : { stream: logStream }),
    redact: { paths: ['req.headers.token', 'req.headers.authorization', 'token', '*.token'], censor: '[redacted]' },
    serializers: {
      req: (request: { method: string, url: string, ip?: string }) => ({ method: request.method, url: redactUrl(request.url), remoteAddress: request.ip })
    }
  }
}

export async function buildApp (options: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(options),
    trustProxy: options.config.TRUST_PROXY,
    // A caller's x-request-id becomes the log's reqId, so one request can be followed across systems.
    requestIdHeader: 'x-request-id',
    // From the moment close begins every new request, readiness probes included, gets 503.
    return503OnClosing: true
  }).withTypeProvider<TypeBoxTypeProvider>()

  try {
    await registerAll(app, options.config)
  } catch (error) {
    // A start that fails halfway (a refused key, an unreachable Redis) still releases what it opened: the DATA_DIR lock, connections.
    await app.close().catch(() => {})
    throw error
  }
  return app
}

async function registerAll (app: FastifyInstance, config: AppConfig): Promise<void> {
  // Order matters and is the dependency order: config, then state, then guards, then services, then routes.
  await app.register(configPlugin, { config })
  await app.register(errorHandlerPlugin)
  await app.register(redisPlugin)
  await app.register(storePlugin)
  await app.register(eventBusPlugin)
  await app.register(secretBoxPlugin)
  await app.register(authPlugin)
  await app.register(rateLimitPlugin)
  await app.register(authorizePlugin)
  await app.register(webhookDeliveryPlugin)
  await app.register(stateEventsPlugin)
  await app.register(sessionsPlugin)
  await app.register(accountsPlugin)
  await app.register(instancesPlugin)
  await app.register(webhooksPlugin)
  await app.register(eventStreamPlugin)

  await app.register(healthRoutes)
  await app.register(accountRoutes, { prefix: '/api' })
  await app.register(instanceRoutes, { prefix: '/api' })
  await app.register(webhookRoutes, { prefix: '/api' })
  // WebSocket support in a scope of its own with the routes that upgrade:
  // @fastify/websocket hooks every request of the scope it is registered in
  // (an onRequest, and an onResponse that makes Fastify watch each response
  // finish), and plain HTTP routes have no use for either.
  await app.register(async (streaming) => {
    await streaming.register(websocketPlugin)
    await streaming.register(eventRoutes)
  })
}
