import t from 'tap'
import { call, createTenant, startApp } from '../support/app.js'
import { backends } from '../support/backends.js'
import { seedSavedSession } from '../support/sessions.js'
import type { FakeWhatsAppServer } from '../support/wa-server/index.js'
import { fakeWhatsApp, SAVED_JID, trustLocalWhatsApp, whatsappEnv } from '../support/whatsapp.js'
import { openStream, refusedStream } from '../support/ws-client.js'

// The live instance.state stream on /ws and /ws/:instance, with a real
// WebSocket client, a listening service and real Baileys sockets.

trustLocalWhatsApp(t)

const serviceEnv = (server: FakeWhatsAppServer, extra: Record<string, string> = {}): Record<string, string> =>
  whatsappEnv(server, { PUBLIC_URL: 'https://wa.example', ...extra })

const stateOf = (frame: any): string => `${String(frame.data?.state)}/${String(frame.data?.detail)}`

for (const backend of await backends(t)) {
  t.test(`${backend.name} store: reconnect through HTTP shows connecting then connected, after the snapshot`, async t => {
    const server = await fakeWhatsApp(t)
    const service = await startApp(t, { env: serviceEnv(server, backend.env()) })
    const { accountId, instanceToken } = await createTenant(service)
    await seedSavedSession(service.app, accountId, 'sales', SAVED_JID)
    const client = await openStream(t, service.url, '/ws', { token: instanceToken })

    const snapshot = await client.waitFor(() => true)
    t.same(snapshot.event, 'instance.state')
    t.match(snapshot, { data: { instance: 'sales', state: 'disconnected', previousState: null, detail: 'snapshot', statusCode: null }, instanceData: { baseUrl: 'https://wa.example', instance: 'sales' } })
    t.match(snapshot.id, /^[0-9a-f-]{36}$/)

    t.equal((await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })).status, 200)
    const connected = await client.waitFor(frame => frame.data?.state === 'connected')
    const frames = client.frames
    t.same(frames.map(stateOf), ['disconnected/snapshot', 'connecting/reconnect_requested', 'connected/logged_in'])
    t.match(frames[1], { data: { previousState: 'disconnected' }, seq: snapshot.seq + 1 })
    t.match(connected, { data: { previousState: 'connecting' }, seq: snapshot.seq + 2 })
    t.equal(new Set(frames.map(frame => frame.id)).size, 3, 'every event has its own id')
    t.notMatch(JSON.stringify(frames), instanceToken, 'no token in any frame')

    await server.kick(SAVED_JID, 'logged_out')
    const loggedOut = await client.waitFor(frame => frame.data?.state === 'loggedout')
    t.match(loggedOut, { data: { previousState: 'connected', detail: 'logged_out', statusCode: 401 }, seq: snapshot.seq + 3 })
  })
}

t.test('tenant isolation on /ws', async t => {
  const server = await fakeWhatsApp(t)
  const service = await startApp(t, { env: serviceEnv(server) })
  const a = await createTenant(service, 'alpha')
  const b = await createTenant(service, 'beta')
  await call(service.url, 'POST', '/api/instance/new', { token: a.accountToken, body: { name: 'alpha-2' } })
  await seedSavedSession(service.app, a.accountId, 'alpha', SAVED_JID)

  const accountA = await openStream(t, service.url, '/ws', { token: a.accountToken })
  const accountB = await openStream(t, service.url, '/ws', { token: b.accountToken })
  const instanceX = await openStream(t, service.url, '/ws', { token: a.instanceToken })
  const alpha2Token = (await call(service.url, 'POST', '/api/instance/new', { token: a.accountToken, body: { name: 'alpha-3' } })).body.instance.token
  const instanceY = await openStream(t, service.url, '/ws', { token: alpha2Token })

  t.equal((await call(service.url, 'POST', '/api/instance/reconnect/alpha', { token: a.instanceToken })).status, 200)
  await accountA.waitFor(frame => frame.data?.instance === 'alpha' && frame.data.state === 'connected')
  await instanceX.waitFor(frame => frame.data?.state === 'connected')
  await new Promise(resolve => setTimeout(resolve, 200))

  t.same([...new Set(accountA.frames.map(frame => frame.data.instance))].sort(), ['alpha', 'alpha-2', 'alpha-3'])
  t.same([...new Set(accountB.frames.map(frame => frame.data.instance))], ['beta'], 'account B never receives A\'s events')
  t.same([...new Set(instanceX.frames.map(frame => frame.data.instance))], ['alpha'])
  t.same([...new Set(instanceY.frames.map(frame => frame.data.instance))], ['alpha-3'], 'instance token Y never receives X\'s events')

  const sneaky = await openStream(t, service.url, '/ws?instances=alpha', { token: b.accountToken })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(sneaky.frames, [], 'naming another account\'s instance shows nothing')

  t.same(await refusedStream(t, service.url, '/ws/alpha', { token: alpha2Token }), { status: 403, body: { success: false, error: { message: 'Instance token does not match this instance' } } })
  t.same(await refusedStream(t, service.url, '/ws/alpha', { token: b.accountToken }), { status: 404, body: { success: false, error: { message: 'Instance not found' } } })
})

t.test('a bad token is refused before the upgrade, with the usual 401 envelope; ?token= works for browsers', async t => {
  const service = await startApp(t)
  const { instanceToken } = await createTenant(service)
  const invalid = { status: 401, body: { success: false, error: { message: 'Invalid token' } } }
  t.same(await refusedStream(t, service.url, '/ws'), invalid)
  t.same(await refusedStream(t, service.url, '/ws', { token: 'nope' }), invalid)
  t.same(await refusedStream(t, service.url, '/ws/sales', { token: service.adminToken }), invalid)
  const browser = await openStream(t, service.url, `/ws/sales?token=${instanceToken}`)
  t.match(await browser.waitFor(() => true), { data: { instance: 'sales', detail: 'snapshot' } })
})

t.test('the upgrade counts against the rate limit', async t => {
  const service = await startApp(t, { env: { RATE_LIMIT_MAX: '3' } })
  const { instanceToken } = await createTenant(service)
  for (let i = 0; i < 3; i++) await openStream(t, service.url, '/ws', { token: instanceToken })
  t.same(await refusedStream(t, service.url, '/ws', { token: instanceToken }), { status: 429, body: { success: false, error: { message: 'Rate limit exceeded. Try again later.' } } })
})

t.test('instances created, logged out and deleted while connected appear in the stream', async t => {
  const service = await startApp(t)
  const { accountToken } = await createTenant(service, 'sales')
  const client = await openStream(t, service.url, '/ws', { token: accountToken })
  await client.waitFor(frame => frame.data?.detail === 'snapshot')

  await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'fresh' } })
  t.match(await client.waitFor(frame => frame.data?.instance === 'fresh'), { data: { state: 'disconnected', previousState: null, detail: 'created' }, seq: 1 })
  await call(service.url, 'DELETE', '/api/instance/logout/fresh', { token: accountToken })
  t.match(await client.waitFor(frame => frame.data?.instance === 'fresh' && frame.data.state === 'loggedout'), { data: { detail: 'logout_requested' }, seq: 2 })
  await call(service.url, 'DELETE', '/api/instance/delete/fresh', { token: accountToken })
  t.match(await client.waitFor(frame => frame.data?.detail === 'deleted'), { data: { instance: 'fresh', state: 'loggedout' }, seq: 3 })
})

t.test('subscribe and unsubscribe frames get an ack or an error frame, never silence', async t => {
  const service = await startApp(t)
  const { accountToken, instanceToken } = await createTenant(service, 'sales')
  await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'support' } })

  const client = await openStream(t, service.url, '/ws?instances=sales', { token: accountToken })
  await client.waitFor(frame => frame.data?.instance === 'sales')
  t.notOk(client.frames.some(frame => frame.data?.instance === 'support'), 'narrowed by ?instances=')

  client.send({ action: 'subscribe', instances: ['support'] })
  t.same(await client.waitFor(frame => frame.event === 'ack'), { event: 'ack', action: 'subscribe', instances: ['support'] })
  t.match(await client.waitFor(frame => frame.data?.instance === 'support'), { data: { detail: 'snapshot' } })

  const from = client.frames.length
  client.send({ action: 'unsubscribe', instances: ['sales'] })
  await client.waitFor(frame => frame.event === 'ack' && frame.action === 'unsubscribe', { from })
  await call(service.url, 'DELETE', '/api/instance/logout/sales', { token: accountToken })
  await call(service.url, 'DELETE', '/api/instance/logout/support', { token: accountToken })
  await client.waitFor(frame => frame.data?.instance === 'support' && frame.data.state === 'loggedout', { from })
  t.notOk(client.frames.slice(from).some(frame => frame.data?.instance === 'sales'), 'no events after unsubscribing')

  for (const bad of ['not json', { action: 'dance', instances: [] }, { action: 'subscribe', instances: 'sales' }, { action: 'subscribe', instances: ['bad name'] }]) {
    const mark = client.frames.length
    client.socket.send(typeof bad === 'string' ? bad : JSON.stringify(bad))
    t.match(await client.waitFor(frame => frame.event === 'error', { from: mark }), { event: 'error', error: { message: String } }, JSON.stringify(bad))
  }

  const own = await openStream(t, service.url, '/ws', { token: instanceToken })
  own.send({ action: 'subscribe', instances: ['support'] })
  t.match(await own.waitFor(frame => frame.event === 'error'), { event: 'error', action: 'subscribe', error: { message: 'Instance token does not match this instance' } })
})

t.test('a slow consumer is closed with 1013 and does not slow the others', async t => {
  const service = await startApp(t, { env: { WS_MAX_BUFFERED_BYTES: String(256 * 1024) } })
  const { accountId, accountToken } = await createTenant(service)
  const slow = await openStream(t, service.url, '/ws', { token: accountToken })
  const fast = await openStream(t, service.url, '/ws', { token: accountToken })
  await slow.waitFor(() => true)
  await fast.waitFor(() => true)
  // Stop reading on the slow client: the server's send buffer fills up.
  ;(slow.socket as unknown as { _socket: { pause: () => void } })._socket.pause()
  const instance = await service.app.store.findInstanceByName(accountId, 'sales')
  const bulky = 'x'.repeat(32 * 1024)
  for (let seq = 100; seq < 400; seq++) {
    await service.app.bus.publish({ id: `e${seq}`, seq, accountId, instanceId: instance?.id ?? '', instance: 'sales', state: 'connecting', previousState: 'connecting', detail: 'qr_ready', statusCode: null, at: new Date().toISOString(), qrCode: bulky, qrCodeBase64: bulky })
    // Let the network move between events, as it does between real state changes.
    await new Promise(resolve => setImmediate(resolve))
  }
  await fast.waitFor(frame => frame.seq === 399)
  ;(slow.socket as unknown as { _socket: { resume: () => void } })._socket.resume()
  const closed = await slow.closed
  t.equal(closed.code, 1013)
  t.match(closed.reason, /Slow consumer/)
  t.equal(fast.frames.filter(frame => frame.seq >= 100).length, 300, 'the fast client got every event')
})

t.test('a peer that stops answering pings is terminated; shutdown closes clients with 1001', async t => {
  const service = await startApp(t, { env: { WS_PING_INTERVAL_MS: '1000' } })
  const { accountToken } = await createTenant(service)
  const silent = await openStream(t, service.url, '/ws', { token: accountToken })
  const healthy = await openStream(t, service.url, '/ws', { token: accountToken })
  // ws answers pings by itself; a peer that does not is simulated by swallowing them.
  ;(silent.socket as unknown as { pong: () => void }).pong = () => {}
  const dropped = await silent.closed
  t.equal(dropped.code, 1006, 'terminated without a close frame')
  t.equal(healthy.socket.readyState, healthy.socket.OPEN, 'an answering peer stays')
  await service.close()
  t.same(await healthy.closed, { code: 1001, reason: 'Server shutting down' })
})

t.test('pings are spread over the interval, not sent to every client at once', async t => {
  const service = await startApp(t, { env: { WS_PING_INTERVAL_MS: '1000' } })
  const { accountToken } = await createTenant(service)
  const clients = await Promise.all(Array.from({ length: 20 }, async () => await openStream(t, service.url, '/ws', { token: accountToken })))
  const firstPings = await Promise.all(clients.map(async client => await new Promise<number>(resolve => {
    client.socket.once('ping', () => { resolve(performance.now()) })
  })))
  const spread = Math.max(...firstPings) - Math.min(...firstPings)
  t.ok(spread >= 500, `the first pings of 20 clients span ${spread.toFixed(0)} ms of the 1000 ms interval`)
})

t.test('two app instances on one Redis: a /ws client on the second sees events driven through the first', async t => {
  const redis = (await backends(t)).find(backend => backend.name === 'redis')
  if (redis === undefined) return
  const server = await fakeWhatsApp(t)
  const env = serviceEnv(server, redis.env())
  const first = await startApp(t, { env })
  const second = await startApp(t, { env })
  const { accountId, instanceToken } = await createTenant(first)
  await seedSavedSession(first.app, accountId, 'sales', SAVED_JID)
  const client = await openStream(t, second.url, '/ws', { token: instanceToken })
  await client.waitFor(frame => frame.data?.detail === 'snapshot')
  t.equal((await call(first.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })).status, 200)
  await client.waitFor(frame => frame.data?.state === 'connected')
  t.same(client.frames.map(stateOf), ['disconnected/snapshot', 'connecting/reconnect_requested', 'connected/logged_in'])
  const seqs = client.frames.map(frame => frame.seq)
  t.same(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2], 'in order, no gap')
})
