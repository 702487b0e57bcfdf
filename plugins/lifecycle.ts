import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: { readonly shuttingDown: boolean }
  }
}

/** Flips to shutting down as soon as close begins, so readiness turns 503 before anything stops. */
export default fp(async (app) => {
  const lifecycle = { shuttingDown: false }
  app.decorate('lifecycle', lifecycle)
  app.addHook('preClose', async () => { lifecycle.shuttingDown = true })
}, { name: 'lifecycle' })
