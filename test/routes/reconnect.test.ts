import t from 'tap'
import { backends } from '../support/backends.js'
import { call, createTenant, startApp } from '../support/app.js'
import { recordEvents } from '../support/events.js'
import { seedSavedSession } from '../support/sessions.js'
import { fakeWhatsApp, SAVED_JID, trustLocalWhatsApp, whatsappEnv } from '../support/whatsapp.js'

trustLocalWhatsApp(t)

// The seed page's contract for POST /api/instance/reconnect/:instance, row by
// row, byte for byte on status and error.message, on every store backend.

const NO_SESSION = 'Instance has no saved session, call /connect first'

for (const backend of await backends(t)) {
  t.test(`${backend.name} store`, async t => {
    t.test('200 Reconnect initiated for a saved session, whatever the body; connected follows', async t => {
      const server = await fakeWhatsApp(t)
      const service = await startApp(t, { env: whatsappEnv(server, backend.env()) })
      const events = recordEvents(t, service.app)
      const { accountId, accountToken, instanceToken } = await createTenant(service)
      await seedSavedSession(service.app, accountId, 'sales', SAVED_JID)
      for (const [token, body] of [[instanceToken, {}], [accountToken, { headers: { 'content-type': 'application/json' }, rawBody: '{"oops' }]] as const) {
        const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token, ...body })
        t.equal(reply.status, 200)
        t.same(reply.body, { success: true, message: 'Reconnect initiated', status: 'connecting' })
      }
      await events.waitFor(event => event.state === 'connected')
    })

    t.test('400 when the instance was never connected, whatever the body', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { instanceToken } = await createTenant(service)
      const bodies: Array<{ label: string, headers?: Record<string, string>, rawBody?: string }> = [
        { label: 'no body' },
        { label: 'empty JSON body', headers: { 'content-type': 'application/json' }, rawBody: '' },
        { label: 'malformed JSON', headers: { 'content-type': 'application/json' }, rawBody: '{"oops' },
        { label: 'text/plain', headers: { 'content-type': 'text/plain' }, rawBody: 'hello' },
        { label: 'unknown content type', headers: { 'content-type': 'application/x-weird' }, rawBody: '\u0000\u0001' },
        { label: 'valid JSON', headers: { 'content-type': 'application/json' }, rawBody: '{"any":"thing"}' }
      ]
      for (const body of bodies) {
        const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken, ...body })
        t.equal(reply.status, 400, body.label)
        t.equal(reply.headers.get('content-type'), 'application/json; charset=utf-8', body.label)
        t.same(reply.body, { success: false, error: { message: NO_SESSION } }, body.label)
      }
    })

    t.test('401 Invalid token when the token is missing or unknown', async t => {
      const service = await startApp(t, { env: backend.env() })
      await createTenant(service)
      for (const token of [undefined, 'not-a-real-token']) {
        const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token, headers: { 'content-type': 'application/json' }, rawBody: '{bad' })
        t.equal(reply.status, 401)
        t.equal(reply.headers.get('content-type'), 'application/json; charset=utf-8')
        t.same(reply.body, { success: false, error: { message: 'Invalid token' } })
      }
    })

    t.test('404 Instance not found for a name the account does not have', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { accountToken } = await createTenant(service)
      const reply = await call(service.url, 'POST', '/api/instance/reconnect/nobody', { token: accountToken })
      t.equal(reply.status, 404)
      t.same(reply.body, { success: false, error: { message: 'Instance not found' } })
    })

    t.test('429 after 100 requests in a minute', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { instanceToken } = await createTenant(service)
      for (let i = 0; i < 100; i++) {
        const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
        if (reply.status !== 400) t.fail(`request ${i + 1} got ${reply.status}`)
      }
      const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
      t.equal(reply.status, 429)
      t.same(reply.body, { success: false, error: { message: 'Rate limit exceeded. Try again later.' } })
    })

    t.test('500 Failed to reconnect: <reason> when WhatsApp cannot be dialled, state back to disconnected', async t => {
      const service = await startApp(t, { env: { ...backend.env(), WA_WS_URL: 'ws://127.0.0.1:1/ws/chat' } })
      const { accountId, instanceToken } = await createTenant(service)
      await seedSavedSession(service.app, accountId, 'sales')
      const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
      t.equal(reply.status, 500)
      t.same(reply.body, { success: false, error: { message: 'Failed to reconnect: connect ECONNREFUSED 127.0.0.1:1' } })
      const list = await call(service.url, 'GET', '/api/instance/list', { token: instanceToken })
      t.equal(list.body.instances[0].connection.state, 'disconnected')
    })
  })
}
