import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createRedisClient } from '../stores/redis-client.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis client when REDIS_URL is set, else null (embedded mode). */
    redis: Redis | null
  }
}

export default fp(async (app) => {
  const url = app.config.REDIS_URL
  if (url === undefined) {
    app.decorate('redis', null)
    return
  }
  // Connect before the app is ready, so a wrong REDIS_URL fails the start with a clear cause.
  const redis = createRedisClient(url, { lazyConnect: true, maxRetriesPerRequest: 3 })
  redis.on('error', (error: Error) => { app.log.warn({ err: error }, 'Redis connection error') })
  await redis.connect()
  app.decorate('redis', redis)
  app.addHook('onClose', async () => { await redis.quit() })
}, { name: 'redis', dependencies: ['config'] })
