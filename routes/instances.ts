import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastJsonStringify from 'fast-json-stringify'
import type { FastifySerializerCompiler } from 'fastify'
import type { Static } from 'typebox'
import { errorResponses, InstanceParams } from '../schemas/common.js'
import {
  ConnectQuery,
  ConnectReply,
  CreateInstanceBody,
  CreateInstanceReply,
  DeleteReply,
  type InstanceViewType,
  ListInstancesQuery,
  ListInstancesReply,
  LogoutReply,
  ProxyBody,
  ProxyReply,
  ReconnectReply
} from '../schemas/instance.js'
import { asAccount, asTenant } from '../services/auth.js'

const RECONNECT_INITIATED = { success: true, message: 'Reconnect initiated', status: 'connecting' } as const

type ListReply = Static<typeof ListInstancesReply>

const ONE_INSTANCE_FOUND = '1 Instance found'

function listReply (list: InstanceViewType[]): ListReply {
  return { success: true, message: list.length === 1 ? ONE_INSTANCE_FOUND : `${list.length} Instances found`, instances: list }
}

/**
 * Clients poll one instance's status (`list?instanceName=<name>`) over and
 * over. Such a reply depends on that instance's view alone, and a view never
 * changes (the service shares one per stored record), so the reply is
 * serialized once per view, by the route's schema like any other, and kept
 * with the view: in a WeakMap, so the text goes when the view does.
 * Serializing it was about a tenth of such a request.
 */
const serializeListReplies: FastifySerializerCompiler<unknown> = ({ schema, httpStatus }) => {
  const serialize = fastJsonStringify(schema as Parameters<typeof fastJsonStringify>[0])
  if (httpStatus !== '200') return serialize
  const serializedByView = new WeakMap<InstanceViewType, string>()
  return (reply: ListReply) => {
    const [view] = reply.instances
    if (view === undefined || reply.instances.length > 1) return serialize(reply)
    let serialized = serializedByView.get(view)
    if (serialized === undefined) {
      serialized = serialize(reply)
      serializedByView.set(view, serialized)
    }
    return serialized
  }
}

/** `?instanceName=a,b` as names; most calls name one instance, and they skip the split. */
function namesIn (filter = ''): string[] {
  if (!filter.includes(',')) {
    const name = filter.trim()
    return name === '' ? [] : [name]
  }
  return filter.split(',').map(name => name.trim()).filter(name => name !== '')
}

const instances: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/instance/new', {
    config: { auth: 'account', rateLimit: { max: app.config.RATE_LIMIT_CREATE_MAX } },
    schema: { body: CreateInstanceBody, response: { 201: CreateInstanceReply, ...errorResponses(403, 409) } }
  }, async (request, reply) => {
    const instance = await app.instances.create(asAccount(request.caller), request.body)
    return await reply.code(201).send({ success: true, message: 'Instance created', instance })
  })

  app.get('/instance/list', {
    config: { auth: 'tenant' },
    schema: { querystring: ListInstancesQuery, response: { 200: ListInstancesReply, ...errorResponses(404) } },
    serializerCompiler: serializeListReplies
  }, (request) => app.instances.list(asTenant(request.caller), namesIn(request.query.instanceName)).then(listReply))

  app.get('/instance/connect/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, querystring: ConnectQuery, response: { 200: ConnectReply, ...errorResponses(403, 404, 504) } }
  }, async (request) => {
    return await app.instances.connect(asTenant(request.caller), request.params.instance, { number: request.query.number })
  })

  // The contract says the body is accepted and ignored, whatever it is: this
  // scope's only parser drains any payload (malformed JSON, unknown types
  // included) so Fastify never answers 400 or 415 for it.
  await app.register(async (plainScope) => {
    const scope = plainScope.withTypeProvider<TypeBoxTypeProvider>()
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => { done(null, undefined) })
    scope.post('/instance/reconnect/:instance', {
      config: { auth: 'tenant' },
      schema: { params: InstanceParams, response: { 200: ReconnectReply, ...errorResponses(403, 404) } }
    }, (request) => app.instances.reconnect(asTenant(request.caller), request.params.instance).then(() => RECONNECT_INITIATED))
  })

  app.delete('/instance/logout/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, response: { 200: LogoutReply, ...errorResponses(403, 404) } }
  }, async (request) => {
    await app.instances.logout(asTenant(request.caller), request.params.instance)
    return { success: true as const, message: 'Instance logged out' as const, instance: { status: 'loggedout' as const } }
  })

  app.delete('/instance/delete/:instance', {
    config: { auth: 'account' },
    schema: { params: InstanceParams, response: { 200: DeleteReply, ...errorResponses(404) } }
  }, async (request) => {
    await app.instances.remove(asAccount(request.caller), request.params.instance)
    return { success: true as const, message: 'Instance deleted' as const, instance: { status: 'deleted' as const } }
  })

  app.get('/instance/getProxy/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, response: { 200: ProxyReply, ...errorResponses(403, 404) } }
  }, async (request) => {
    const proxy = await app.instances.getProxy(asTenant(request.caller), request.params.instance)
    return { success: true as const, message: 'Proxy found', proxy }
  })

  app.post('/instance/proxy/:instance', {
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, body: ProxyBody, response: { 200: ProxyReply, ...errorResponses(403, 404) } }
  }, async (request) => {
    const proxy = await app.instances.setProxy(asTenant(request.caller), request.params.instance, request.body)
    return { success: true as const, message: 'Proxy updated; it applies from the next connect or reconnect', proxy }
  })
}

export default instances
