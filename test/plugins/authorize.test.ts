import t from 'tap'
import { call, startApp } from '../support/app.js'

const INVALID_TOKEN = { success: false, error: { message: 'Invalid token' } }

t.test('unauthenticated calls are refused before their body is read', async t => {
  const service = await startApp(t)
  const reply = await call(service.url, 'POST', '/api/instance/new', { headers: { 'content-type': 'application/json' }, rawBody: '{not json' })
  t.equal(reply.status, 401)
  t.same(reply.body, INVALID_TOKEN)
})

t.test('unauthenticated calls are refused before their input is validated', async t => {
  const service = await startApp(t)
  const tooLong = 'x'.repeat(65)
  const params = await call(service.url, 'POST', `/api/instance/reconnect/${tooLong}`, { token: 'not-a-token' })
  const body = await call(service.url, 'POST', '/api/instance/new', { token: 'not-a-token', body: { name: 'not valid!' } })
  for (const reply of [params, body]) {
    t.equal(reply.status, 401)
    t.same(reply.body, INVALID_TOKEN)
  }
})
