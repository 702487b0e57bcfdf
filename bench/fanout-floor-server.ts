/**
 * The floor of bench/fanout.ts: a bare `ws` WebSocketServer on 127.0.0.1, no
 * Fastify, no auth, no store, no bus, driven over the same IPC protocol as
 * bench/fanout-server.ts. Every client gets a snapshot frame on connect; on
 * `emit` it builds one envelope of the service's shape and size, encodes it
 * once and `send()`s that buffer to every client in one loop, which is the
 * least any Node WebSocket server can do per subscriber. Measured with the
 * same clients and the same clock, it shows how much of the service's fan-out
 * latency is the machine's (kernel and clients) rather than the service's.
 */
import { randomUUID } from 'node:crypto'
import { type AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { toEnvelope } from '../bus/events.js'
import type { ConnectionState } from '../stores/store.js'
import { DETAIL_PREFIX, openFilesLimit, type ServerReply, type ServerRequest, wallNow } from './fanout-protocol.js'

function send (message: ServerReply): void {
  if (process.send !== undefined) process.send(message)
}

const INSTANCE = 'fanout'
const BASE_URL = 'http://localhost:3000'

/** One frame of the service's exact envelope, encoded once. */
function envelope (state: ConnectionState, previousState: ConnectionState | null, detail: string, seq: number): Buffer {
  return Buffer.from(JSON.stringify(toEnvelope({
    id: randomUUID(),
    seq,
    accountId: INSTANCE,
    instanceId: INSTANCE,
    instance: INSTANCE,
    state,
    previousState,
    detail,
    statusCode: null,
    at: new Date().toISOString()
  }, BASE_URL)))
}

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws', maxPayload: 64 * 1024 })
server.on('connection', client => { client.send(envelope('disconnected', null, 'snapshot', 0), { binary: false }) })
await new Promise<void>(resolve => { server.once('listening', () => { resolve() }) })

process.on('message', (message: ServerRequest) => {
  switch (message.type) {
    case 'clock':
      send({ type: 'clock', id: message.id, now: wallNow() })
      break
    case 'target':
      send({ type: 'target', instanceId: INSTANCE })
      break
    case 'emit': {
      const calledAt = wallNow()
      const frame = envelope(message.seq % 2 === 0 ? 'connecting' : 'disconnected', message.seq % 2 === 0 ? 'disconnected' : 'connecting', `${DETAIL_PREFIX}${message.seq}`, message.seq + 1)
      for (const client of server.clients) client.send(frame, { binary: false })
      const loopEnd = wallNow()
      send({ type: 'emitted', seq: message.seq, calledAt, publishedAt: calledAt, returnedAt: loopEnd })
      send({ type: 'fanned', seq: message.seq, at: loopEnd })
      break
    }
    case 'count':
      send({ type: 'count', sockets: server.clients.size })
      break
    case 'stop':
      for (const client of server.clients) client.terminate()
      server.close()
      process.disconnect?.()
      break
    default:
      send({ type: 'failed', message: `the floor server does not support ${message.type}` })
  }
})
process.on('disconnect', () => { server.close() })

const { port } = server.address() as AddressInfo
send({ type: 'ready', url: `http://127.0.0.1:${port}`, store: 'none', bus: 'floor', openFiles: openFilesLimit() })
