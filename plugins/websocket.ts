import websocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'

const GOING_AWAY = 1001
/** Each interval's pings go out in this many slices, so ten thousand clients never cost one long pause. */
const HEARTBEAT_SLICES = 10

/**
 * WebSocket support for /ws. Every client is pinged once per
 * WS_PING_INTERVAL_MS and terminated if it did not answer its previous ping;
 * clients are spread over slices of the interval, so the pings (one write
 * each) are spread too. Clients' own pings are answered by ws itself.
 * Shutdown closes every client with 1001.
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
  const slices = Array.from({ length: HEARTBEAT_SLICES }, () => new Set<WebSocket>())
  let joined = 0
  app.websocketServer.on('connection', (client: WebSocket) => {
    const slice = slices[joined++ % HEARTBEAT_SLICES] as Set<WebSocket>
    slice.add(client)
    answered.add(client)
    client.on('pong', () => { answered.add(client) })
    client.on('close', () => { slice.delete(client) })
  })
  let turn = 0
  const heartbeat = setInterval(() => {
    for (const client of slices[turn++ % HEARTBEAT_SLICES] as Set<WebSocket>) {
      if (!answered.has(client)) {
        client.terminate()
        continue
      }
      answered.delete(client)
      client.ping()
    }
  }, app.config.WS_PING_INTERVAL_MS / HEARTBEAT_SLICES)
  heartbeat.unref()
  app.addHook('onClose', async () => { clearInterval(heartbeat) })
}, { name: 'websocket', dependencies: ['config'] })
