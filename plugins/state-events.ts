import fp from 'fastify-plugin'
import { createStateRecorder, type StateRecorder } from '../services/state-events.js'

declare module 'fastify' {
  interface FastifyInstance {
    recordState: StateRecorder
  }
}

export default fp(async (app) => {
  app.decorate('recordState', createStateRecorder({ store: app.store, bus: app.bus, webhooks: app.webhookDispatcher }))
}, { name: 'state-events', dependencies: ['store', 'event-bus', 'webhook-delivery'] })
