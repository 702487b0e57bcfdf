import { join } from 'node:path'
import fp from 'fastify-plugin'
import { deliverOnce } from '../services/webhooks/delivery.js'
import { openFileWebhookQueue } from '../services/webhooks/file-queue.js'
import type { QueueSettings, WebhookQueue } from '../services/webhooks/queue.js'
import { openRedisWebhookQueue } from '../services/webhooks/redis-queue.js'
import { createWebhookDispatcher, type WebhookDispatcher } from '../services/webhooks/webhook-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    webhookQueue: WebhookQueue
    webhookDispatcher: WebhookDispatcher
  }
}

/** The webhook outbox: BullMQ on Redis when REDIS_URL is set, files in DATA_DIR otherwise. */
export default fp(async (app) => {
  const { config, secretBox } = app
  const settings: QueueSettings = {
    deliver: async (delivery) => await deliverOnce(delivery, {
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      allowPrivate: config.WEBHOOK_ALLOW_PRIVATE,
      open: secretBox.open
    }),
    instanceExists: async (instanceId) => (await app.store.getInstance(instanceId)) !== null,
    maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
    backoff: { baseMs: config.WEBHOOK_RETRY_BASE_MS, maxMs: config.WEBHOOK_RETRY_MAX_MS },
    onOutcome: (delivery, outcome, attempt) => {
      if (outcome.kind !== 'delivered') app.log.warn({ instanceId: delivery.instanceId, label: delivery.label, eventId: delivery.id, attempt, error: outcome.error }, 'webhook delivery failed')
    }
  }
  const queue = app.redis === null
    ? await openFileWebhookQueue(join(config.DATA_DIR, 'webhooks'), settings)
    : await openRedisWebhookQueue({ ...settings, redis: app.redis, prefix: config.REDIS_PREFIX, onError: (error) => { app.log.error({ err: error }, 'webhook queue error') } })
  app.decorate('webhookQueue', queue)
  app.decorate('webhookDispatcher', createWebhookDispatcher({ queue, baseUrl: config.PUBLIC_URL ?? `http://localhost:${config.PORT}` }))
  app.addHook('onClose', async () => { await queue.close() })
}, { name: 'webhook-delivery', dependencies: ['config', 'redis', 'store', 'secret-box'] })
