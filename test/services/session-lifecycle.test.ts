import { createServer, type Server } from 'node:http'
import { connect as connectTcp, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { call, createTenant, startApp } from '../support/app.js'
import { backends } from '../support/backends.js'
import { recordEvents } from '../support/events.js'
import { seedSavedSession } from '../support/sessions.js'
import { connectedInstance, fakeWhatsApp, trustLocalWhatsApp, whatsappEnv } from '../support/whatsapp.js'

// connect (QR and pairing code), logout, delete, resume on start, zombie
// detection and proxies, with real Baileys sockets against the local server.

trustLocalWhatsApp(t)

t.test('connect', async t => {
  t.test('with ?number= answers a pairing code', async t => {
    const server = await fakeWhatsApp(t)
    const service = await startApp(t, { env: whatsappEnv(server) })
    const events = recordEvents(t, service.app)
    const { instanceToken } = await createTenant(service)
    const reply = await call(service.url, 'GET', '/api/instance/connect/sales?number=5511988887777', { token: instanceToken })
    t.equal(reply.status, 200)
    t.match(reply.body, { success: true, message: 'Pairing code generated', status: 'pairing', pairingCode: /^[A-Z0-9]{8}$/ })
    t.ok(await events.waitFor(e => e.detail === 'pairing_code_ready'))
    const bad = await call(service.url, 'GET', '/api/instance/connect/sales?number=+55-11', { token: instanceToken })
    t.equal(bad.status, 400)
  })

  t.test('an instance that is already connected is left alone', async t => {
    const server = await fakeWhatsApp(t)
    const { service, instanceToken } = await connectedInstance(t, server)
    const logins = server.logins
    const reply = await call(service.url, 'GET', '/api/instance/connect/sales', { token: instanceToken })
    t.same(reply.body, { success: true, message: 'Instance already connected', status: 'connected' })
    t.equal(server.logins, logins)
    t.equal(server.openConnections(), 1)
  })

  t.test('no QR in time: 504, and the instance rests disconnected', async t => {
    const server = await fakeWhatsApp(t)
    server.stall(true)
    const service = await startApp(t, { env: whatsappEnv(server, { CONNECT_QR_TIMEOUT_MS: '400' }) })
    const { instanceToken } = await createTenant(service)
    const reply = await call(service.url, 'GET', '/api/instance/connect/sales', { token: instanceToken })
    t.equal(reply.status, 504)
    t.same(reply.body, { success: false, error: { message: 'Timed out waiting for QR code' } })
    const list = await call(service.url, 'GET', '/api/instance/list', { token: instanceToken })
    t.equal(list.body.instances[0].connection.state, 'disconnected')
  })

  t.test('QR rotations reach subscribers; when the refs run out: disconnected, qr_timeout, no new QR', async t => {
    const server = await fakeWhatsApp(t, { qrRefs: 3 })
    const service = await startApp(t, { env: whatsappEnv(server, { WA_QR_TIMEOUT_MS: '150' }) })
    const events = recordEvents(t, service.app)
    const { instanceToken } = await createTenant(service)
    const reply = await call(service.url, 'GET', '/api/instance/connect/sales', { token: instanceToken })
    t.equal(reply.status, 200)
    const expired = await events.waitFor(e => e.state === 'disconnected' && e.previousState === 'connecting')
    t.match(expired, { detail: 'qr_timeout', statusCode: 408 })
    const qrs = events.events.filter(e => e.detail === 'qr_ready').map(e => e.qrCode)
    t.equal(new Set(qrs).size, 3, 'one event per QR shown')
    const registrations = server.registrations
    await new Promise(resolve => setTimeout(resolve, 500))
    t.equal(server.registrations, registrations, 'no new QR until asked')
  })
})

t.test('logout of a connected instance logs the device out, wipes the session, keeps the instance', async t => {
  const server = await fakeWhatsApp(t)
  const { service, events, accountId, instanceToken } = await connectedInstance(t, server)
  const reply = await call(service.url, 'DELETE', '/api/instance/logout/sales', { token: instanceToken })
  t.same(reply.body, { success: true, message: 'Instance logged out', instance: { status: 'loggedout' } })
  t.match(await events.waitFor(e => e.state === 'loggedout'), { detail: 'logout_requested' })
  const instance = await service.app.store.findInstanceByName(accountId, 'sales')
  t.notOk(await service.app.store.hasSession(instance?.id ?? ''))
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(server.openConnections(), 0)
  t.equal((await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })).status, 400)
})

for (const backend of await backends(t)) {
  t.test(`${backend.name} store: delete of a connected instance removes instance, token and session, with a final event`, async t => {
    const server = await fakeWhatsApp(t)
    const { service, events, accountId, accountToken, instanceToken } = await connectedInstance(t, server, backend.env())
    const instance = await service.app.store.findInstanceByName(accountId, 'sales')
    const reply = await call(service.url, 'DELETE', '/api/instance/delete/sales', { token: accountToken })
    t.equal(reply.status, 200)
    t.match(await events.waitFor(e => e.detail === 'deleted'), { instance: 'sales', state: 'loggedout' })
    t.equal(await service.app.store.getInstance(instance?.id ?? ''), null)
    t.notOk(await service.app.store.hasSession(instance?.id ?? ''))
    t.equal((await call(service.url, 'GET', '/api/instance/list', { token: instanceToken })).status, 401)
    if (service.app.redis !== null) {
      const leftovers = await service.app.redis.keys(`*${instance?.id ?? 'none'}*`)
      t.same(leftovers, [], 'no Redis key of the instance is left')
    }
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(server.openConnections(), 0)
  })

  t.test(`${backend.name} store: on start, instances that should be online resume by themselves`, async t => {
    const server = await fakeWhatsApp(t)
    const env = whatsappEnv(server, backend.env())
    const first = await startApp(t, { env })
    const events = recordEvents(t, first.app)
    const { accountId, accountToken } = await createTenant(first, 'one')
    await call(first.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'two' } })
    await call(first.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'idle' } })
    await seedSavedSession(first.app, accountId, 'one', '5511000000001:1@s.whatsapp.net')
    await seedSavedSession(first.app, accountId, 'two', '5511000000002:1@s.whatsapp.net')
    await seedSavedSession(first.app, accountId, 'idle', '5511000000003:1@s.whatsapp.net')
    for (const name of ['one', 'two']) {
      t.equal((await call(first.url, 'POST', `/api/instance/reconnect/${name}`, { token: accountToken })).status, 200)
    }
    await events.waitFor(e => e.instance === 'one' && e.state === 'connected')
    await events.waitFor(e => e.instance === 'two' && e.state === 'connected')
    await first.close()

    const second = await startApp(t, { env, dataDir: first.dataDir })
    const resumed = recordEvents(t, second.app)
    await resumed.waitFor(e => e.instance === 'one' && e.state === 'connected')
    await resumed.waitFor(e => e.instance === 'two' && e.state === 'connected')
    t.notOk(resumed.events.some(e => e.instance === 'idle'), 'an instance that was never online stays as it was')
    t.equal(server.loginsFor('5511000000003:1@s.whatsapp.net'), 0)
  })
}

t.test('zombie detection: a connection that goes silent is closed and recovered', async t => {
  const server = await fakeWhatsApp(t)
  const { events } = await connectedInstance(t, server, { WA_KEEPALIVE_MS: '1000' })
  const from = events.mark()
  server.stall(true)
  t.match(await events.waitFor(e => e.state === 'connecting', { from, timeoutMs: 12_000 }), { detail: 'network_error', statusCode: 408 })
  server.stall(false)
  await events.waitFor(e => e.state === 'connected', { from, timeoutMs: 10_000 })
})

/** A minimal HTTP CONNECT proxy that records where it was asked to tunnel. */
async function connectProxy (t: Test): Promise<{ port: number, tunnels: string[] }> {
  const tunnels: string[] = []
  const proxy: Server = createServer()
  proxy.on('connect', (request, client, head) => {
    tunnels.push(request.url ?? '')
    const [host, port] = (request.url ?? '').split(':')
    const upstream = connectTcp(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { proxy.closeAllConnections(); await new Promise(resolve => proxy.close(resolve)) })
  return { port: (proxy.address() as AddressInfo).port, tunnels }
}

t.test('a per-instance proxy carries the WhatsApp connection from the next reconnect on', async t => {
  const server = await fakeWhatsApp(t)
  const proxy = await connectProxy(t)
  const { service, events, instanceToken } = await connectedInstance(t, server)
  t.same(proxy.tunnels, [], 'no proxy before one is set')
  const set = await call(service.url, 'POST', '/api/instance/proxy/sales', { token: instanceToken, body: { enabled: true, protocol: 'http', host: '127.0.0.1', port: proxy.port } })
  t.equal(set.status, 200)
  const from = events.mark()
  t.equal((await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })).status, 200)
  await events.waitFor(e => e.state === 'connected', { from })
  t.same(proxy.tunnels, [`127.0.0.1:${server.port}`])
})

t.test('a proxy that refuses: 500 naming the proxy failure', async t => {
  const server = await fakeWhatsApp(t)
  const { service, instanceToken } = await connectedInstance(t, server)
  await call(service.url, 'POST', '/api/instance/proxy/sales', { token: instanceToken, body: { enabled: true, protocol: 'socks5', host: '127.0.0.1', port: 1 } })
  const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
  t.equal(reply.status, 500)
  t.match(reply.body.error.message, /^Failed to reconnect: .*ECONNREFUSED 127\.0\.0\.1:1/)
})
