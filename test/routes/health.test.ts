import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../../app.js'
import { loadConfig } from '../../config/index.js'
import { ADMIN_TOKEN, call, startApp } from '../support/app.js'
import { backends } from '../support/backends.js'

for (const backend of await backends(t)) {
  t.test(`${backend.name} store: probes answer without auth and without rate limits`, async t => {
    const service = await startApp(t, { env: { ...backend.env(), RATE_LIMIT_MAX: '2' } })
    for (let i = 0; i < 5; i++) {
      const live = await call(service.url, 'GET', '/health/live')
      const ready = await call(service.url, 'GET', '/health/ready')
      t.equal(live.status, 200)
      t.equal(ready.status, 200)
      t.equal(ready.headers.get('x-ratelimit-limit'), null)
    }
    const ready = await call(service.url, 'GET', '/health/ready')
    t.same(ready.body, { status: 'ok', checks: { store: 'ok' } })
  })
}

t.test('readiness turns 503 as soon as closing begins', async t => {
  const app = await buildApp({ config: loadConfig({ ADMIN_TOKEN, DATA_DIR: await mkdtemp(join(tmpdir(), 'wa-health-')), LOG_LEVEL: 'silent' }) })
  let during: number | undefined
  // Runs while the shutdown is under way: the listener is still open, new probes must see 503.
  app.addHook('preClose', async () => {
    during = (await fetch(`${url}/health/ready`)).status
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal((await fetch(`${url}/health/ready`)).status, 200)
  await app.close()
  t.equal(during, 503)
})

t.test('readiness is 503 when the store does not answer', async t => {
  const service = await startApp(t, { listen: false })
  service.app.store.ping = async () => { throw new Error('disk unplugged') }
  const reply = await service.app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(reply.statusCode, 503)
  t.same(reply.json(), { status: 'unavailable', checks: { store: 'disk unplugged' } })
})
