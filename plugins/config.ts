import fp from 'fastify-plugin'
import type { AppConfig } from '../config/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig
  }
}

export default fp(async (app, { config }: { config: AppConfig }) => {
  app.decorate('config', config)
}, { name: 'config' })
