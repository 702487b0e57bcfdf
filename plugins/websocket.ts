import websocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'

const GOING_AWAY = 1001

/**
 * WebSocket support for /ws. The server pings every WS_PING_INTERVAL_MS and
 * terminates a peer that did not answer the previous ping; clients' own pings
 * are answered by ws itself. Shutdown closes every client with 1001.
 */
export default fp(async (app) => {
  await app.register(websocket, {
    options: { maxPayload: 64 * 1024 },
    preClose (done) {
      for (const client of app.websocketServer.clients) client.close(GOING_AWAY, 'Server shutting down')
      app.websocketServer.close()
      done()
    }
  })

  const answered = new WeakSet<WebSocket>()
  app.websocketServer.on('connection', (client: WebSocket) => {
    answered.add(client)
    client.on('pong', () => { answered.add(client) })
  })
  const heartbeat = setInterval(() => {
    for (const client of app.websocketServer.clients) {
      if (!answered.has(client)) {
        client.terminate()
        continue
      }
      answered.delete(client)
      client.ping()
    }
  }, app.config.WS_PING_INTERVAL_MS)
  heartbeat.unref()
  app.addHook('onClose', async () => { clearInterval(heartbeat) })
}, { name: 'websocket', dependencies: ['config'] })
