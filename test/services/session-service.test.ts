import t from 'tap'
import { call, createTenant, startApp, type TestApp } from '../support/app.js'
import { backends } from '../support/backends.js'
import { recordEvents } from '../support/events.js'
import { eventually } from '../support/eventually.js'
import { seedSavedSession } from '../support/sessions.js'
import { generateTrustRoot } from '../support/wa-server/index.js'
import { connectedInstance, fakeWhatsApp, SAVED_JID, trustLocalWhatsApp, whatsappEnv } from '../support/whatsapp.js'

// Real Baileys sockets in the service, a local WhatsApp protocol server, real
// stores, everything driven through HTTP on a listening service.

trustLocalWhatsApp(t)

const NO_SESSION = 'Instance has no saved session, call /connect first'

async function stateOf (service: TestApp, token: string, name = 'sales'): Promise<{ state: string, numberJid: string | null }> {
  const reply = await call(service.url, 'GET', `/api/instance/list?instanceName=${name}`, { token })
  return reply.body.instances[0].connection
}

for (const backend of await backends(t)) {
  t.test(`${backend.name} store`, async t => {
    t.test('new → connect → QR → the phone pairs → connected, then a restart resumes without a QR', async t => {
      const server = await fakeWhatsApp(t)
      const env = whatsappEnv(server, backend.env())
      const first = await startApp(t, { env })
      const events = recordEvents(t, first.app)
      const { instanceToken } = await createTenant(first)

      const connect = await call(first.url, 'GET', '/api/instance/connect/sales', { token: instanceToken })
      t.equal(connect.status, 200)
      t.match(connect.body, { success: true, message: 'QR code generated', status: 'qr', qrCode: /^https:\/\/wa\.me\/settings\/linked_devices#/, qrCodeBase64: /^data:image\/png;base64,/ })
      const qrEvent = await events.waitFor(e => e.detail === 'qr_ready')
      t.equal(qrEvent.qrCode, connect.body.qrCode, 'the QR reaches subscribers as an event too')

      const { jid } = await server.completePairing(connect.body.qrCode)
      await events.waitFor(e => e.state === 'connected')
      t.same(await stateOf(first, instanceToken), { state: 'connected', numberJid: jid, displayStatus: 'Connected' })
      t.equal(server.registrations, 1)
      const loginsBefore = server.logins

      await first.close()
      const second = await startApp(t, { env, dataDir: first.dataDir })
      const resumed = recordEvents(t, second.app)
      const from = resumed.mark()
      const reconnect = await call(second.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
      t.equal(reconnect.status, 200)
      t.same(reconnect.body, { success: true, message: 'Reconnect initiated', status: 'connecting' })
      // The restarted service also resumes the instance by itself: the reconnect joins or replaces that attempt.
      await resumed.waitFor(e => e.state === 'connected', { from })
      t.ok(await eventually(async () => (await stateOf(second, instanceToken)).state === 'connected'), 'list shows connected')
      t.equal(server.registrations, 1, 'no new registration: no QR')
      t.ok(server.logins > loginsBefore, 'the server saw a login of the saved session')
      t.notOk(resumed.events.some(e => e.detail === 'qr_ready'))
      t.equal(server.maxConcurrentLoginsFor(jid), 1)
    })

    t.test('a server-side logout (401) wipes the session; reconnect then answers 400', async t => {
      const server = await fakeWhatsApp(t)
      const { service, events, accountId, instanceToken } = await connectedInstance(t, server, backend.env())

      await server.kick(SAVED_JID, 'logged_out')
      const loggedOut = await events.waitFor(e => e.state === 'loggedout')
      t.match(loggedOut, { previousState: 'connected', detail: 'logged_out', statusCode: 401 })
      const instance = await service.app.store.findInstanceByName(accountId, 'sales')
      t.notOk(await service.app.store.hasSession(instance?.id ?? ''), 'session wiped')
      t.equal(instance?.desired, 'offline')

      const reconnect = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
      t.equal(reconnect.status, 400)
      t.same(reconnect.body, { success: false, error: { message: NO_SESSION } })
    })
  })
}

t.test('recovery after the server closes the connection', async t => {
  const server = await fakeWhatsApp(t)
  const { service, events, accountId, instanceToken } = await connectedInstance(t, server)

  t.test('515 restart required: back to connected by itself, at once', async t => {
    const from = events.mark()
    const logins = server.loginsFor(SAVED_JID)
    await server.kick(SAVED_JID, 'restart_required')
    t.match(await events.waitFor(e => e.state === 'connecting', { from }), { detail: 'restart_required', statusCode: 515 })
    await events.waitFor(e => e.state === 'connected', { from })
    t.equal(server.loginsFor(SAVED_JID), logins + 1)
  })

  t.test('a dropped connection comes back by itself after a backoff', async t => {
    const from = events.mark()
    server.drop(SAVED_JID)
    t.match(await events.waitFor(e => e.state === 'connecting', { from }), { detail: 'connection_closed', statusCode: 428 })
    await events.waitFor(e => e.state === 'connected', { from })
  })

  t.test('an outage: refused dials are retried with backoff until the server is back', async t => {
    const from = events.mark()
    server.refuse(true)
    server.drop(SAVED_JID)
    await new Promise(resolve => setTimeout(resolve, 1500))
    t.equal((await stateOf(service, instanceToken)).state, 'connecting', 'still trying')
    const attempts = events.events.slice(from).length
    t.ok(attempts <= 3, `no event storm while retrying (${attempts} events)`)
    server.refuse(false)
    await events.waitFor(e => e.state === 'connected', { from, timeoutMs: 5000 })
  })

  t.test('440 connection replaced: disconnected, and no retry storm', async t => {
    const from = events.mark()
    const logins = server.loginsFor(SAVED_JID)
    await server.kick(SAVED_JID, 'replaced')
    t.match(await events.waitFor(e => e.state === 'disconnected', { from }), { detail: 'connection_replaced', statusCode: 440 })
    await new Promise(resolve => setTimeout(resolve, 1000))
    t.equal(server.loginsFor(SAVED_JID), logins, 'no new login')
    t.equal(server.openConnections(), 0)
    const instance = await service.app.store.findInstanceByName(accountId, 'sales')
    t.equal(instance?.desired, 'offline', 'not resumed after a restart either')
  })
})

t.test('20 concurrent reconnects: all 200, one socket, one login', async t => {
  const server = await fakeWhatsApp(t)
  const service = await startApp(t, { env: whatsappEnv(server) })
  const events = recordEvents(t, service.app)
  const { accountId, instanceToken } = await createTenant(service)
  await seedSavedSession(service.app, accountId, 'sales', SAVED_JID)

  const replies = await Promise.all(Array.from({ length: 20 }, async () => await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })))
  t.same(replies.map(r => r.status), Array(20).fill(200))
  await events.waitFor(e => e.state === 'connected')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(server.loginsFor(SAVED_JID), 1)
  t.equal(server.maxConcurrentLoginsFor(SAVED_JID), 1)
  t.equal(server.openConnections(), 1)
})

t.test('WhatsApp\'s certificate chain is enforced', async t => {
  t.test('a server whose chain is not signed by the trusted root is refused with 500 naming the certificate', async t => {
    const impostor = await fakeWhatsApp(t, { root: generateTrustRoot() })
    const service = await startApp(t, { env: whatsappEnv(impostor) })
    const { accountId, instanceToken } = await createTenant(service)
    await seedSavedSession(service.app, accountId, 'sales', SAVED_JID)
    const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
    t.equal(reply.status, 500)
    t.same(reply.body, { success: false, error: { message: 'Failed to reconnect: noise intermediate certificate signature invalid' } })
    t.equal(impostor.logins, 0)
    t.equal((await stateOf(service, instanceToken)).state, 'disconnected')
  })

  t.test('the trusted test root connects', async t => {
    const { service, instanceToken } = await connectedInstance(t, await fakeWhatsApp(t))
    t.equal((await stateOf(service, instanceToken)).state, 'connected')
  })
})

t.test('a closed WhatsApp port: 500 with the cause, within the dial timeout', async t => {
  const service = await startApp(t, { env: { WA_WS_URL: 'ws://127.0.0.1:1/ws/chat', RECONNECT_DIAL_TIMEOUT_MS: '3000' } })
  const { accountId, instanceToken } = await createTenant(service)
  await seedSavedSession(service.app, accountId, 'sales', SAVED_JID)
  const started = Date.now()
  const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
  t.equal(reply.status, 500)
  t.equal(reply.body.error.message, 'Failed to reconnect: connect ECONNREFUSED 127.0.0.1:1')
  t.ok(Date.now() - started < 3000, 'answered before the dial timeout')
})

t.test('a server that accepts the WebSocket but never answers: 500 when the dial timeout passes', async t => {
  const server = await fakeWhatsApp(t)
  server.stall(true)
  const service = await startApp(t, { env: { ...whatsappEnv(server), RECONNECT_DIAL_TIMEOUT_MS: '500' } })
  const { accountId, instanceToken } = await createTenant(service)
  await seedSavedSession(service.app, accountId, 'sales', SAVED_JID)
  const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
  t.equal(reply.status, 500)
  t.equal(reply.body.error.message, 'Failed to reconnect: dial timed out after 500 ms')
})
