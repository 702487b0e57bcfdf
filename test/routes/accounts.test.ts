import t from 'tap'
import { call, startApp } from '../support/app.js'

t.test('only the admin token creates and lists accounts; tokens are shown once', async t => {
  const service = await startApp(t)
  const created = await call(service.url, 'POST', '/api/account', { token: service.adminToken, body: { name: 'acme' } })
  t.equal(created.status, 201)
  t.equal(created.body.message, 'Account created')
  t.match(created.body.account, { id: String, name: 'acme', token: /^[0-9a-f]{64}$/ })

  const list = await call(service.url, 'GET', '/api/account', { headers: { authorization: `Bearer ${service.adminToken}` } })
  t.equal(list.status, 200)
  t.equal(list.body.message, '1 Account found')
  t.same(Object.keys(list.body.accounts[0]).sort(), ['createdAt', 'id', 'name'], 'no token, no hash')

  for (const token of [created.body.account.token, 'wrong', undefined]) {
    const denied = await call(service.url, 'POST', '/api/account', { token, body: { name: 'x' } })
    t.equal(denied.status, 401)
    t.same(denied.body, { success: false, error: { message: 'Invalid token' } })
  }
  const invalid = await call(service.url, 'POST', '/api/account', { token: service.adminToken, body: { name: '' } })
  t.equal(invalid.status, 400)
  t.equal(invalid.body.success, false)
})
