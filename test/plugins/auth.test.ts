import t from 'tap'
import { call, createTenant, startApp } from '../support/app.js'

t.test('a token is read from the token header, then Authorization: Bearer, then ?token=', async t => {
  const service = await startApp(t)
  const { instanceToken } = await createTenant(service)
  const viaHeader = await call(service.url, 'GET', '/api/instance/list', { headers: { token: instanceToken } })
  const viaBearer = await call(service.url, 'GET', '/api/instance/list', { headers: { authorization: `Bearer ${instanceToken}` } })
  const viaQuery = await call(service.url, 'GET', `/api/instance/list?token=${instanceToken}`)
  for (const reply of [viaHeader, viaBearer, viaQuery]) t.equal(reply.status, 200)
  const headerWins = await call(service.url, 'GET', '/api/instance/list?token=garbage', { headers: { token: instanceToken } })
  t.equal(headerWins.status, 200)
  const wrongScheme = await call(service.url, 'GET', '/api/instance/list', { headers: { authorization: `Basic ${instanceToken}` } })
  t.equal(wrongScheme.status, 401)
})

t.test('no token ever reaches the log, even in ?token=', async t => {
  const service = await startApp(t, { env: { LOG_LEVEL: 'trace' } })
  const { accountToken, instanceToken } = await createTenant(service)
  await call(service.url, 'GET', `/api/instance/list?token=${instanceToken}`)
  await call(service.url, 'GET', `/api/instance/list?instanceName=sales&token=${accountToken}`)
  await call(service.url, 'GET', '/api/instance/list', { headers: { authorization: `Bearer ${accountToken}` } })
  await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
  await service.close()
  const log = service.logs.join('')
  t.match(log, /token=\[redacted\]/, 'the query token was seen and redacted')
  for (const secret of [accountToken, instanceToken, service.adminToken]) t.notOk(log.includes(secret), 'token absent from the log')
})
