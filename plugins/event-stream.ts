import fp from 'fastify-plugin'
import { createEventStream, type EventStream } from '../services/event-stream.js'

declare module 'fastify' {
  interface FastifyInstance {
    eventStream: EventStream
  }
}

export default fp(async (app) => {
  const { config } = app
  const stream = createEventStream({
    bus: app.bus,
    store: app.store,
    auth: app.auth,
    baseUrl: config.PUBLIC_URL ?? `http://localhost:${config.PORT}`,
    maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES
  })
  app.decorate('eventStream', stream)
  app.addHook('onClose', async () => { stream.stop() })
}, { name: 'event-stream', dependencies: ['config', 'store', 'event-bus', 'auth'] })
