import fp from 'fastify-plugin'
import { openStore } from '../stores/index.js'
import type { Store } from '../stores/store.js'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

export default fp(async (app) => {
  const store = await openStore({
    dataDir: app.config.DATA_DIR,
    redis: app.redis,
    redisPrefix: app.config.REDIS_PREFIX
  })
  app.decorate('store', store)
  app.log.info({ store: store.kind }, 'store opened')
  app.addHook('onClose', async () => { await store.close() })
}, { name: 'store', dependencies: ['config', 'redis'] })
