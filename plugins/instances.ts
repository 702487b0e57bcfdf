import fp from 'fastify-plugin'
import { createInstanceService, type InstanceService } from '../services/instances.js'

declare module 'fastify' {
  interface FastifyInstance {
    instances: InstanceService
  }
}

export default fp(async (app) => {
  app.decorate('instances', createInstanceService({
    store: app.store,
    auth: app.auth,
    sessions: app.sessions,
    webhookQueue: app.webhookQueue,
    recordState: app.recordState,
    secretBox: app.secretBox,
    quota: app.config.ACCOUNT_INSTANCE_QUOTA,
    allowPrivateWebhooks: app.config.WEBHOOK_ALLOW_PRIVATE
  }))
}, { name: 'instances', dependencies: ['store', 'auth', 'sessions', 'webhook-delivery', 'state-events', 'secret-box'] })
