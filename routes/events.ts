import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { errorResponses, InstanceParams } from '../schemas/common.js'
import { StreamQuery } from '../schemas/events.js'
import { asTenant } from '../services/auth.js'

/**
 * GET /ws (every visible instance, optionally ?instances=a,b) and
 * GET /ws/:instance (RyzeAPI's path for one instance). Auth, the rate limit
 * and the instance checks run as HTTP hooks, so a refused client gets the
 * usual JSON error before any upgrade.
 */
const events: FastifyPluginAsyncTypebox = async (app) => {
  function stream (socket: WebSocket, request: FastifyRequest, names: string[] | null): void {
    const session = app.eventStream.open({
      send: (frame) => { socket.send(frame, { binary: false }) },
      bufferedAmount: () => socket.bufferedAmount,
      close: (code, reason) => { socket.close(code, reason) }
    }, asTenant(request.caller), names)
    socket.on('message', (data, isBinary) => { if (!isBinary) session.receive(data.toString()) })
    socket.on('close', () => { session.end() })
  }

  app.get('/ws', {
    websocket: true,
    config: { auth: 'tenant' },
    schema: { querystring: StreamQuery, response: errorResponses() }
  }, (socket, request) => {
    const { instances } = request.query as { instances?: string }
    const names = instances?.split(',').filter(name => name !== '') ?? []
    stream(socket, request, names.length === 0 ? null : names)
  })

  app.get('/ws/:instance', {
    websocket: true,
    config: { auth: 'tenant' },
    schema: { params: InstanceParams, response: errorResponses(403, 404) },
    // 403 for another instance's token, 404 for a name the account does not have: before the upgrade.
    preHandler: async (request) => {
      await app.instances.resolve(asTenant(request.caller), (request.params as { instance: string }).instance)
    }
  }, (socket, request) => {
    stream(socket, request, [(request.params as { instance: string }).instance])
  })
}

export default events
