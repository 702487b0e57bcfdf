import fp from 'fastify-plugin'
import { type EventBus, openEventBus } from '../bus/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    bus: EventBus
  }
}

export default fp(async (app) => {
  const bus = await openEventBus({ redis: app.redis, prefix: app.config.REDIS_PREFIX })
  app.decorate('bus', bus)
  app.addHook('onClose', async () => { await bus.close() })
}, { name: 'event-bus', dependencies: ['config', 'redis'] })
