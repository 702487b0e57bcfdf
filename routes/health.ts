import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HealthReply } from '../schemas/health.js'

const STORE_PING_TIMEOUT_MS = 2_000

/** Kubernetes probes: public, never rate-limited, cheap. */
const health: FastifyPluginAsyncTypebox = async (app) => {
  const probe = { config: { rateLimit: false as const }, logLevel: 'warn' as const }

  // Answering at all proves the event loop turns; a blocked loop makes the probe time out.
  app.get('/health/live', { ...probe, schema: { response: { 200: HealthReply } } }, async () => ({ status: 'ok' as const }))

  app.get('/health/ready', { ...probe, schema: { response: { 200: HealthReply, 503: HealthReply } } }, async (_request, reply) => {
    try {
      await Promise.race([
        app.store.ping(),
        new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('store ping timed out')) }, STORE_PING_TIMEOUT_MS).unref())
      ])
    } catch (error) {
      return await reply.code(503).send({ status: 'unavailable', checks: { store: (error as Error).message } })
    }
    return { status: 'ok' as const, checks: { store: 'ok' } }
  })
}

export default health
