import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CreateAccountBody, CreateAccountReply, ListAccountsReply } from '../schemas/account.js'
import { errorResponses } from '../schemas/common.js'

const accounts: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/account', {
    config: { auth: 'admin' },
    schema: { body: CreateAccountBody, response: { 201: CreateAccountReply, ...errorResponses() } }
  }, async (request, reply) => {
    const account = await app.accounts.create(request.body.name)
    return await reply.code(201).send({ success: true, message: 'Account created', account })
  })

  app.get('/account', {
    config: { auth: 'admin' },
    schema: { response: { 200: ListAccountsReply, ...errorResponses() } }
  }, async () => {
    const list = await app.accounts.list()
    return { success: true as const, message: `${list.length} ${list.length === 1 ? 'Account' : 'Accounts'} found`, accounts: list }
  })
}

export default accounts
