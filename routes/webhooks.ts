import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, InstanceParams } from '../schemas/common.js'
import { DeadLettersReply, GetWebhookQuery, GetWebhookReply, SaveWebhookReply, WebhookBody } from '../schemas/webhook.js'
import { asTenant } from '../services/auth.js'

const webhooks: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/events/webhook/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, body: WebhookBody, response: { 200: SaveWebhookReply, ...errorResponses(403, 404) } }
  }, async (request) => {
    const saved = await app.webhooks.save(asTenant(request.caller), request.params.instance, request.body)
    return { success: true as const, message: 'Webhook saved' as const, ...saved }
  })

  app.get('/events/getWebhook/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, querystring: GetWebhookQuery, response: { 200: GetWebhookReply, ...errorResponses(403, 404) } }
  }, async (request) => {
    const list = await app.webhooks.list(asTenant(request.caller), request.params.instance, request.query.label)
    return { success: true as const, message: `${list.length} ${list.length === 1 ? 'Webhook' : 'Webhooks'} found`, webhooks: list }
  })

  app.get('/events/deadLetters/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, response: { 200: DeadLettersReply, ...errorResponses(403, 404) } }
  }, async (request) => {
    const deadLetters = await app.webhooks.deadLetters(asTenant(request.caller), request.params.instance)
    return { success: true as const, message: `${deadLetters.length} failed ${deadLetters.length === 1 ? 'delivery' : 'deliveries'}`, deadLetters }
  })
}

export default webhooks
