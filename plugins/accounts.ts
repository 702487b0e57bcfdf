import fp from 'fastify-plugin'
import { type AccountService, createAccountService } from '../services/accounts.js'

declare module 'fastify' {
  interface FastifyInstance {
    accounts: AccountService
  }
}

export default fp(async (app) => {
  app.decorate('accounts', createAccountService({ store: app.store }))
}, { name: 'accounts', dependencies: ['store'] })
