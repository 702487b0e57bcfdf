import t from 'tap'
import { call, createTenant, startApp } from '../support/app.js'
import { backends } from '../support/backends.js'

const LIMITED = { success: false, error: { message: 'Rate limit exceeded. Try again later.' } }

for (const backend of await backends(t)) {
  t.test(`${backend.name} store`, async t => {
    t.test('the 101st request in a minute gets 429 with the headers; another token is unaffected', async t => {
      const service = await startApp(t, { env: backend.env() })
      const a = await createTenant(service, 'alpha')
      const b = await createTenant(service, 'beta')
      const started = Math.floor(Date.now() / 1000)

      const first = await call(service.url, 'GET', '/api/instance/list', { token: a.instanceToken })
      t.equal(first.headers.get('x-ratelimit-limit'), '100')
      t.equal(first.headers.get('x-ratelimit-remaining'), '99')
      const reset = Number(first.headers.get('x-ratelimit-reset'))
      t.ok(reset >= started + 59 && reset <= started + 61, `X-RateLimit-Reset is the Unix time of the reset (${reset})`)

      for (let i = 2; i <= 100; i++) {
        const reply = await call(service.url, 'GET', '/api/instance/list', { token: a.instanceToken })
        if (reply.status !== 200) t.fail(`request ${i} got ${reply.status}`)
      }
      const limited = await call(service.url, 'GET', '/api/instance/list', { token: a.instanceToken })
      t.equal(limited.status, 429)
      t.same(limited.body, LIMITED)
      t.equal(limited.headers.get('x-ratelimit-limit'), '100')
      t.equal(limited.headers.get('x-ratelimit-remaining'), '0')
      const limitedReset = Number(limited.headers.get('x-ratelimit-reset'))
      if (backend.name === 'file') t.equal(limitedReset, reset, 'the window is fixed from the first request, and so is its reset')
      // Redis reports the time left; the reset it implies is late by the round trip, which can cross a second.
      else t.ok(Math.abs(limitedReset - reset) <= 1, 'the window is fixed from the first request')
      const retryAfter = Number(limited.headers.get('retry-after'))
      t.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After in seconds (${retryAfter})`)

      const other = await call(service.url, 'GET', '/api/instance/list', { token: b.instanceToken })
      t.equal(other.status, 200, 'another token has its own budget')
      t.equal(other.headers.get('x-ratelimit-remaining'), '99')
    })

    t.test('instance creation has its own, lower limit', async t => {
      const service = await startApp(t, { env: { ...backend.env(), RATE_LIMIT_CREATE_MAX: '3', ACCOUNT_INSTANCE_QUOTA: '100' } })
      const { accountToken } = await createTenant(service)
      for (let i = 0; i < 2; i++) {
        const reply = await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: `extra-${i}` } })
        t.equal(reply.status, 201)
        t.equal(reply.headers.get('x-ratelimit-limit'), '3')
      }
      const limited = await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'one-too-many' } })
      t.equal(limited.status, 429)
      t.same(limited.body, LIMITED)
      const list = await call(service.url, 'GET', '/api/instance/list', { token: accountToken })
      t.equal(list.status, 200, 'the rest of the API is still open to the same token')
    })

    t.test('without a valid token the budget is per client IP, so guessing tokens is limited too', async t => {
      const service = await startApp(t, { env: { ...backend.env(), RATE_LIMIT_MAX: '5' } })
      for (let i = 0; i < 5; i++) {
        const reply = await call(service.url, 'GET', '/api/instance/list', { token: `guess-${i}` })
        t.equal(reply.status, 401)
      }
      const limited = await call(service.url, 'GET', '/api/instance/list', { token: 'guess-again' })
      t.equal(limited.status, 429)
      t.same(limited.body, LIMITED)
    })
  })
}

t.test('two app instances on one Redis share one budget', async t => {
  const redis = (await backends(t)).find(backend => backend.name === 'redis')
  if (redis === undefined) return
  const env = { ...redis.env(), RATE_LIMIT_MAX: '10' }
  const one = await startApp(t, { env })
  const two = await startApp(t, { env })
  const { instanceToken } = await createTenant(one)
  for (let i = 0; i < 10; i++) {
    const replica = i % 2 === 0 ? one : two
    const reply = await call(replica.url, 'GET', '/api/instance/list', { token: instanceToken })
    t.equal(reply.status, 200, `request ${i + 1} on replica ${i % 2 === 0 ? 'one' : 'two'}`)
  }
  t.equal((await call(one.url, 'GET', '/api/instance/list', { token: instanceToken })).status, 429)
  t.equal((await call(two.url, 'GET', '/api/instance/list', { token: instanceToken })).status, 429)
})
