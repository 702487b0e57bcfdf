import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, ConfigSchema, loadConfig } from '../config/index.js'
import { ADMIN_TOKEN, call, startApp } from './support/app.js'

t.test('loadConfig', async t => {
  t.test('an empty environment gives the documented defaults', async t => {
    const config = loadConfig({})
    t.match(config, {
      PORT: 3000,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      DATA_DIR: './data',
      REDIS_PREFIX: 'wa:',
      RATE_LIMIT_MAX: 100,
      RATE_LIMIT_CREATE_MAX: 20,
      ACCOUNT_INSTANCE_QUOTA: 100,
      TRUST_PROXY: false,
      SHUTDOWN_TIMEOUT_MS: 10_000,
      WA_WS_URL: 'wss://web.whatsapp.com/ws/chat'
    })
    for (const optional of ['REDIS_URL', 'ADMIN_TOKEN', 'ENCRYPTION_KEY', 'PUBLIC_URL', 'WA_QR_TIMEOUT_MS']) {
      t.notOk(optional in config, `${optional} is unset, not defaulted`)
    }
  })

  t.test('an empty value counts as unset', async t => {
    const config = loadConfig({ PORT: '', REDIS_URL: '', ADMIN_TOKEN: '', LOG_LEVEL: '' })
    t.equal(config.PORT, 3000)
    t.equal(config.LOG_LEVEL, 'info')
    t.notOk('REDIS_URL' in config)
    t.notOk('ADMIN_TOKEN' in config)
  })

  t.test('environment strings become numbers and booleans', async t => {
    const config = loadConfig({
      PORT: '8080',
      RATE_LIMIT_MAX: '5',
      RATE_LIMIT_CREATE_MAX: '2',
      SHUTDOWN_TIMEOUT_MS: '2500',
      WA_QR_TIMEOUT_MS: '15000',
      TRUST_PROXY: 'true',
      HOST: '127.0.0.1',
      REDIS_URL: 'rediss://cache.internal:6380/2'
    })
    t.equal(config.PORT, 8080)
    t.equal(config.RATE_LIMIT_MAX, 5)
    t.equal(config.RATE_LIMIT_CREATE_MAX, 2)
    t.equal(config.SHUTDOWN_TIMEOUT_MS, 2500)
    t.equal(config.WA_QR_TIMEOUT_MS, 15_000)
    t.equal(config.TRUST_PROXY, true)
    t.equal(config.HOST, '127.0.0.1')
    t.equal(config.REDIS_URL, 'rediss://cache.internal:6380/2')

    t.equal(loadConfig({ TRUST_PROXY: 'false' }).TRUST_PROXY, false)
    t.equal(loadConfig({ TRUST_PROXY: '1' }).TRUST_PROXY, true)
    t.equal(loadConfig({ TRUST_PROXY: '0' }).TRUST_PROXY, false)
    t.equal(loadConfig({ PORT: '0' }).PORT, 0, 'port 0 (any free port) is allowed')
  })

  t.test('variables the service does not know are dropped', async t => {
    const config = loadConfig({ PATH: '/usr/bin', HOME: '/root', FOO: 'bar', npm_config_cache: '/tmp', PORT: '1234' })
    t.same(Object.keys(config).filter(name => !(name in ConfigSchema.properties)), [])
    t.notOk('PATH' in config)
    t.notOk('FOO' in config)
    t.equal(config.PORT, 1234)
  })

  t.test('a ConfigError lists every problem at once, by variable name', async t => {
    let caught: unknown
    try {
      loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', REDIS_URL: 'http://cache:6379', HOST: '127.0.0.1' })
    } catch (error) {
      caught = error
    }
    t.ok(caught instanceof ConfigError, 'a ConfigError')
    const error = caught as ConfigError
    t.equal(error.name, 'ConfigError')
    const lines = error.message.split('\n')
    t.equal(lines[0], 'Invalid configuration:')
    const problems = lines.slice(1)
    t.equal(problems.length, 3, 'one line per problem')
    t.match(problems.find(line => line.startsWith('  - PORT: ')), /whole number/)
    t.match(problems.find(line => line.startsWith('  - LOG_LEVEL: ')), /allowed values/)
    t.match(problems.find(line => line.startsWith('  - REDIS_URL: ')), /rediss\?:\/\//)
    t.notOk(error.message.includes('HOST'), 'valid variables are not mentioned')
  })

  t.test('out-of-range numbers, non-booleans and short secrets are problems', async t => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ PORT: '70000' }, 'PORT'],
      [{ PORT: '-1' }, 'PORT'],
      [{ RATE_LIMIT_MAX: '0' }, 'RATE_LIMIT_MAX'],
      [{ SHUTDOWN_TIMEOUT_MS: '5' }, 'SHUTDOWN_TIMEOUT_MS'],
      [{ TRUST_PROXY: 'yes' }, 'TRUST_PROXY'],
      [{ ADMIN_TOKEN: 'short' }, 'ADMIN_TOKEN'],
      [{ ENCRYPTION_KEY: 'short' }, 'ENCRYPTION_KEY'],
      [{ PUBLIC_URL: 'ftp://example.com' }, 'PUBLIC_URL'],
      [{ WA_WS_URL: 'http://127.0.0.1:1/ws' }, 'WA_WS_URL']
    ]
    for (const [env, name] of cases) {
      t.throws(() => loadConfig(env), { name: 'ConfigError', message: new RegExp(`\\n  - ${name}: `) }, `${JSON.stringify(env)} names ${name}`)
    }
  })

  t.test('a fractional number is a problem, not silently truncated', async t => {
    t.throws(() => loadConfig({ PORT: '3.5' }), ConfigError, 'PORT=3.5')
    t.throws(() => loadConfig({ SHUTDOWN_TIMEOUT_MS: '1500.9' }), ConfigError, 'SHUTDOWN_TIMEOUT_MS=1500.9')
  })
})

t.test('the admin token when ADMIN_TOKEN is unset', async t => {
  t.test('is generated into DATA_DIR/admin-token (0600), logged by path only, reused on the next start, and works as admin', async t => {
    const first = await startApp(t, { env: { ADMIN_TOKEN: undefined } })
    const path = join(first.dataDir, 'admin-token')
    const token = (await readFile(path, 'utf8')).trim()
    t.match(token, /^[0-9a-f]{64}$/, 'a 32-byte random token, hex')
    t.not(token, ADMIN_TOKEN)
    t.equal((await stat(path)).mode & 0o777, 0o600, 'readable by the owner only')

    const generated = first.logs.map(line => JSON.parse(line) as Record<string, unknown>).find(entry => entry.path === path)
    t.match(generated, { level: 30, msg: /generated an admin token/ }, 'the path is logged at info')

    const created = await call(first.url, 'POST', '/api/account', { token, body: { name: 'acme' } })
    t.equal(created.status, 201, 'the generated token is the admin token')
    const denied = await call(first.url, 'POST', '/api/account', { token: ADMIN_TOKEN, body: { name: 'x' } })
    t.equal(denied.status, 401, 'no other token is')
    t.notOk(first.logs.join('').includes(token), 'the token itself never appears in the log')
    await first.close()

    const second = await startApp(t, { env: { ADMIN_TOKEN: undefined }, dataDir: first.dataDir })
    t.equal((await readFile(path, 'utf8')).trim(), token, 'the file is kept')
    const reused = second.logs.map(line => JSON.parse(line) as Record<string, unknown>).find(entry => entry.path === path)
    t.match(reused, { level: 30, msg: /using the admin token stored in this file/ })
    const listed = await call(second.url, 'GET', '/api/account', { token })
    t.equal(listed.status, 200, 'the same token is admin after a restart')
    t.same(listed.body.accounts.map((account: { name: string }) => account.name), ['acme'])
    t.notOk(second.logs.join('').includes(token), 'nor in the second start\'s log')
  })

  t.test('ADMIN_TOKEN, when set, is used and no file is written', async t => {
    const service = await startApp(t)
    await t.rejects(stat(join(service.dataDir, 'admin-token')), { code: 'ENOENT' })
    const created = await call(service.url, 'POST', '/api/account', { token: ADMIN_TOKEN, body: { name: 'acme' } })
    t.equal(created.status, 201)
  })

  t.test('an empty admin-token file is refused, not taken as an empty token', async t => {
    const first = await startApp(t, { env: { ADMIN_TOKEN: undefined } })
    await first.close()
    await writeFile(join(first.dataDir, 'admin-token'), '', { mode: 0o600 })
    await t.rejects(startApp(t, { env: { ADMIN_TOKEN: undefined }, dataDir: first.dataDir }), /admin-token/, 'refuses to start, naming the file')
  })
})
