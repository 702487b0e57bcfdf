import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { call, createTenant, startApp, type TestApp } from '../support/app.js'
import { backends } from '../support/backends.js'

async function newAccount (service: TestApp, name = 'acme'): Promise<string> {
  const reply = await call(service.url, 'POST', '/api/account', { token: service.adminToken, body: { name } })
  return reply.body.account.token
}

for (const backend of await backends(t)) {
  t.test(`${backend.name} store`, async t => {
    t.test('creating instances: 201 with a token shown once, name rules, duplicates, quota', async t => {
      const service = await startApp(t, { env: { ...backend.env(), ACCOUNT_INSTANCE_QUOTA: '2' } })
      const token = await newAccount(service)

      const created = await call(service.url, 'POST', '/api/instance/new', { token, body: { name: 'sales' } })
      t.equal(created.status, 201)
      t.equal(created.body.success, true)
      t.equal(created.body.message, 'Instance created')
      t.equal(created.body.instance.name, 'sales')
      t.equal(created.body.instance.status, 'disconnected')
      t.match(created.body.instance.token, /^[0-9a-f]{64}$/)

      for (const name of ['', 'has space', 'x'.repeat(65), 'slash/name', 'ünïcode']) {
        const bad = await call(service.url, 'POST', '/api/instance/new', { token, body: { name } })
        t.equal(bad.status, 400, `name ${JSON.stringify(name)}`)
        t.equal(bad.body.success, false)
        t.match(bad.body.error.message, /name/)
      }
      const missing = await call(service.url, 'POST', '/api/instance/new', { token, body: {} })
      t.equal(missing.status, 400)
      t.same(Object.keys(missing.body), ['success', 'error'])

      const duplicate = await call(service.url, 'POST', '/api/instance/new', { token, body: { name: 'sales' } })
      t.equal(duplicate.status, 409)
      t.same(duplicate.body, { success: false, error: { message: 'Instance name already exists' } })

      const custom = await call(service.url, 'POST', '/api/instance/new', { token, body: { name: 'support', token: 'my-own-instance-token-123' } })
      t.equal(custom.status, 201)
      t.equal(custom.body.instance.token, 'my-own-instance-token-123')
      const own = await call(service.url, 'GET', '/api/instance/list', { token: 'my-own-instance-token-123' })
      t.equal(own.body.instances[0].name, 'support')

      const overQuota = await call(service.url, 'POST', '/api/instance/new', { token, body: { name: 'third' } })
      t.equal(overQuota.status, 403)
      t.same(overQuota.body, { success: false, error: { message: 'Account instance quota exceeded' } })
    })

    t.test('only an account token creates instances', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { instanceToken } = await createTenant(service)
      for (const token of [instanceToken, service.adminToken, undefined]) {
        const reply = await call(service.url, 'POST', '/api/instance/new', { token, body: { name: 'other' } })
        t.equal(reply.status, 401)
        t.same(reply.body, { success: false, error: { message: 'Invalid token' } })
      }
    })

    t.test('listing: messages, filters, skipped names, 404 for one missing name', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { accountToken, instanceToken } = await createTenant(service, 'sales')
      await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'support' } })

      const all = await call(service.url, 'GET', '/api/instance/list', { token: accountToken })
      t.equal(all.status, 200)
      t.equal(all.body.message, '2 Instances found')
      t.same(all.body.instances.map((i: { name: string }) => i.name), ['sales', 'support'])
      const [first] = all.body.instances
      t.same(first.connection, { state: 'disconnected', numberJid: null, displayStatus: 'Disconnected' })
      t.same(first.profile, { name: null, pictureUrl: null, isBusiness: false, businessName: null })
      t.same(first.proxy, { enabled: false, protocol: null, host: null, port: null })
      t.match(first.createdAt, /^\d{4}-\d\d-\d\dT/)
      t.match(first.updatedAt, /^\d{4}-\d\d-\d\dT/)

      const one = await call(service.url, 'GET', '/api/instance/list?instanceName=support', { token: accountToken })
      t.equal(one.body.message, '1 Instance found')
      t.same(one.body.instances.map((i: { name: string }) => i.name), ['support'])

      const some = await call(service.url, 'GET', '/api/instance/list?instanceName=support,ghost,sales', { token: accountToken })
      t.same(some.body.instances.map((i: { name: string }) => i.name), ['support', 'sales'])

      const missing = await call(service.url, 'GET', '/api/instance/list?instanceName=ghost', { token: accountToken })
      t.equal(missing.status, 404)
      t.same(missing.body, { success: false, error: { message: 'Instance not found' } })

      const asInstance = await call(service.url, 'GET', '/api/instance/list?instanceName=support', { token: instanceToken })
      t.same(asInstance.body.instances.map((i: { name: string }) => i.name), ['sales'], 'an instance token sees only its own instance, whatever the filter')
    })

    t.test('a polled instance: every poll answers the same bytes until the instance changes, then its new state', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { accountToken, instanceToken } = await createTenant(service, 'sales')
      const poll = async (): Promise<string> => {
        const reply = await fetch(`${service.url}/api/instance/list?instanceName=sales`, { headers: { token: accountToken } })
        t.equal(reply.status, 200)
        return await reply.text()
      }

      const first = await poll()
      t.equal(await poll(), first, 'an unchanged instance answers the same reply')
      t.same(JSON.parse(first).instances[0].proxy, { enabled: false, protocol: null, host: null, port: null })

      await call(service.url, 'POST', '/api/instance/proxy/sales', {
        token: instanceToken,
        body: { enabled: true, protocol: 'http', host: 'proxy.example', port: 3128, username: 'bob', password: 'pr0xy-s3cret-value' }
      })
      const afterProxy = JSON.parse(await poll())
      t.same(afterProxy.instances[0].proxy, { enabled: true, protocol: 'http', host: 'proxy.example', port: 3128 }, 'the next poll shows the change')
      t.same(Object.keys(afterProxy.instances[0].proxy), ['enabled', 'protocol', 'host', 'port'], 'still only the fields of the schema')

      await call(service.url, 'POST', '/api/instance/proxy/sales', { token: instanceToken, body: { enabled: false, protocol: 'http', host: 'proxy.example', port: 3128 } })
      t.equal(JSON.parse(await poll()).instances[0].proxy.enabled, false, 'and the one after that')

      await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'support' } })
      const both = await call(service.url, 'GET', '/api/instance/list?instanceName=sales,support', { token: accountToken })
      t.equal(both.body.message, '2 Instances found', 'a list of several is answered as before')
      t.same(both.body.instances.map((i: { name: string }) => i.name), ['sales', 'support'])
    })

    t.test('tenant isolation: accounts and instance tokens cannot reach others', async t => {
      const service = await startApp(t, { env: backend.env() })
      const a = await createTenant(service, 'alpha')
      const b = await createTenant(service, 'beta')
      await call(service.url, 'POST', '/api/instance/new', { token: a.accountToken, body: { name: 'alpha-2' } })

      const seenByB = await call(service.url, 'GET', '/api/instance/list', { token: b.accountToken })
      t.same(seenByB.body.instances.map((i: { name: string }) => i.name), ['beta'])

      const routes: Array<[string, string, unknown?]> = [
        ['POST', '/api/instance/reconnect/alpha'],
        ['GET', '/api/instance/connect/alpha'],
        ['DELETE', '/api/instance/logout/alpha'],
        ['DELETE', '/api/instance/delete/alpha'],
        ['GET', '/api/instance/getProxy/alpha'],
        ['POST', '/api/instance/proxy/alpha', { enabled: true, protocol: 'http', host: 'proxy.example', port: 8080 }],
        ['GET', '/api/instance/list?instanceName=alpha']
      ]
      for (const [method, path, body] of routes) {
        const reply = await call(service.url, method, path, { token: b.accountToken, body })
        t.equal(reply.status, 404, `account B: ${method} ${path}`)
        t.same(reply.body, { success: false, error: { message: 'Instance not found' } })
      }
      for (const [method, path, body] of routes.slice(0, 6)) {
        const reply = await call(service.url, method, path.replace('alpha', 'alpha-2'), { token: a.instanceToken, body })
        const expected = path.includes('/delete/')
          ? { status: 401, message: 'Invalid token' }
          : { status: 403, message: 'Instance token does not match this instance' }
        t.equal(reply.status, expected.status, `instance token X on Y: ${method} ${path}`)
        t.same(reply.body, { success: false, error: { message: expected.message } })
      }
      const ghost = await call(service.url, 'POST', '/api/instance/reconnect/does-not-exist', { token: a.instanceToken })
      t.equal(ghost.status, 403, 'decided before any lookup: a missing name looks the same as an existing one')

      const stillThere = await call(service.url, 'GET', '/api/instance/list', { token: a.accountToken })
      t.equal(stillThere.body.instances.length, 2)
    })

    t.test('logout keeps the instance and its token; delete removes both', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { accountToken, instanceToken } = await createTenant(service)

      const logout = await call(service.url, 'DELETE', '/api/instance/logout/sales', { token: instanceToken })
      t.equal(logout.status, 200)
      t.same(logout.body, { success: true, message: 'Instance logged out', instance: { status: 'loggedout' } })
      const after = await call(service.url, 'GET', '/api/instance/list', { token: instanceToken })
      t.equal(after.body.instances[0].connection.state, 'loggedout')
      t.equal(after.body.instances[0].connection.displayStatus, 'Logged out')

      const byInstance = await call(service.url, 'DELETE', '/api/instance/delete/sales', { token: instanceToken })
      t.equal(byInstance.status, 401)
      t.same(byInstance.body, { success: false, error: { message: 'Invalid token' } })

      const deleted = await call(service.url, 'DELETE', '/api/instance/delete/sales', { token: accountToken })
      t.equal(deleted.status, 200)
      t.same(deleted.body, { success: true, message: 'Instance deleted', instance: { status: 'deleted' } })
      const gone = await call(service.url, 'GET', '/api/instance/list', { token: instanceToken })
      t.equal(gone.status, 401, 'the instance token died with the instance')
      const again = await call(service.url, 'DELETE', '/api/instance/delete/sales', { token: accountToken })
      t.equal(again.status, 404)
      const recreated = await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'sales' } })
      t.equal(recreated.status, 201, 'the name is free again')
    })

    t.test('proxy: set, read back without the password, encrypted at rest', async t => {
      const service = await startApp(t, { env: backend.env() })
      const { instanceToken } = await createTenant(service)
      const empty = await call(service.url, 'GET', '/api/instance/getProxy/sales', { token: instanceToken })
      t.same(empty.body.proxy, { enabled: false, protocol: null, host: null, port: null, username: null, hasPassword: false })

      const password = 'pr0xy-s3cret-value'
      const set = await call(service.url, 'POST', '/api/instance/proxy/sales', {
        token: instanceToken,
        body: { enabled: true, protocol: 'socks5', host: 'proxy.example', port: 1080, username: 'bob', password }
      })
      t.equal(set.status, 200)
      t.same(set.body.proxy, { enabled: true, protocol: 'socks5', host: 'proxy.example', port: 1080, username: 'bob', hasPassword: true })
      const read = await call(service.url, 'GET', '/api/instance/getProxy/sales', { token: instanceToken })
      t.same(read.body.proxy, set.body.proxy)
      const list = await call(service.url, 'GET', '/api/instance/list', { token: instanceToken })
      t.same(list.body.instances[0].proxy, { enabled: true, protocol: 'socks5', host: 'proxy.example', port: 1080 })
      t.notMatch(JSON.stringify([set.body, read.body, list.body]), password)

      const stored = await service.app.store.listAllInstances()
      t.notMatch(JSON.stringify(stored), password, 'the store holds only the sealed password')
      t.match(stored[0]?.proxy?.passwordSealed, /^v1:/)

      for (const body of [{ enabled: true, protocol: 'ftp', host: 'h', port: 1 }, { enabled: true, protocol: 'http', host: 'h', port: 70000 }, { protocol: 'http', host: 'h', port: 1 }]) {
        const bad = await call(service.url, 'POST', '/api/instance/proxy/sales', { token: instanceToken, body })
        t.equal(bad.status, 400, JSON.stringify(body))
        t.equal(bad.body.success, false)
      }
    })

    t.test('inline proxy and webhook fields at creation', async t => {
      const service = await startApp(t, { env: backend.env() })
      const token = await newAccount(service)
      const created = await call(service.url, 'POST', '/api/instance/new', {
        token,
        body: { name: 'sales', proxyHost: 'p.example', proxyPort: 3128, proxyPassword: 'pw-123', webhookUrl: 'https://hooks.example/wa', webhookAuthorization: 'Bearer hook-secret' }
      })
      t.equal(created.status, 201)
      const list = await call(service.url, 'GET', '/api/instance/list', { token })
      t.same(list.body.instances[0].proxy, { enabled: true, protocol: 'http', host: 'p.example', port: 3128 })
      t.same(list.body.instances[0].webhooks, [{ label: 'default', enabled: true, url: 'https://hooks.example/wa', byEvents: false, events: [] }])
      t.notMatch(JSON.stringify(await service.app.store.listAllInstances()), /pw-123|hook-secret/)
    })
  })
}

t.test('the file store keeps no token or secret in clear', async t => {
  const service = await startApp(t)
  const { accountToken, instanceToken } = await createTenant(service)
  await call(service.url, 'POST', '/api/instance/proxy/sales', { token: instanceToken, body: { enabled: true, protocol: 'http', host: 'h.example', port: 1, password: 'hidden-proxy-password' } })
  await service.close()
  const files: string[] = []
  async function walk (dir: string): Promise<void> {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) await walk(path)
      else files.push(path)
    }
  }
  await walk(service.dataDir)
  t.ok(files.length >= 2)
  for (const file of files) {
    const content = await readFile(file, 'utf8')
    for (const secret of [accountToken, instanceToken, 'hidden-proxy-password']) t.notOk(content.includes(secret), `${file} does not contain a secret`)
  }
})
