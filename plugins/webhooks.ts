import fp from 'fastify-plugin'
import { createWebhookService, type WebhookService } from '../services/webhooks/webhook-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    webhooks: WebhookService
  }
}

export default fp(async (app) => {
  app.decorate('webhooks', createWebhookService({
    store: app.store,
    secretBox: app.secretBox,
    queue: app.webhookQueue,
    resolve: app.instances.resolve,
    allowPrivate: app.config.WEBHOOK_ALLOW_PRIVATE
  }))
}, { name: 'webhooks', dependencies: ['store', 'secret-box', 'webhook-delivery', 'instances'] })
