import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { call } from './support/app.js'
import { freePort } from './support/ports.js'

/**
 * The real entry point, server.ts, run as operators run it: its own process,
 * configured by the environment, stopped by signals. No build is needed: the
 * child runs the TypeScript source under the loader tap uses.
 */

const repoRoot = fileURLToPath(new URL('../', import.meta.url))

interface ServerProcess {
  process: ChildProcess
  url: string
  /** Everything written to stdout and stderr so far. */
  output: () => string
  /** Resolves when the process has exited and its output is fully read. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Starts `node server.ts` with only the given settings: nothing from the
 * developer's environment (REDIS_URL, ADMIN_TOKEN, …) leaks into the process.
 */
async function spawnServer (t: Test, env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'server.ts'], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      // Type checking is `npm run typecheck`'s job; this only needs to run.
      TS_NODE_TRANSPILE_ONLY: '1',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      // Nothing may try to reach the real WhatsApp.
      WA_WS_URL: 'ws://127.0.0.1:1/ws/chat',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('close', (code, signal) => { resolve({ code, signal }) })
  })
  return { process: child, url: `http://127.0.0.1:${port}`, output: () => output, exited }
}

/** Polls /health/live until it answers 200; fails with the server's output if it exits or takes too long. */
async function untilLive (server: ServerProcess, timeoutMs = 30_000): Promise<void> {
  let exited = false
  void server.exited.then(() => { exited = true })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited) throw new Error(`server exited before it was live:\n${server.output()}`)
    try {
      const reply = await fetch(server.url + '/health/live')
      if (reply.status === 200) return
    } catch {
      // Not listening yet.
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`server not live within ${timeoutMs} ms:\n${server.output()}`)
}

/** Sends the signal and measures how long the process takes to exit. */
async function stop (server: ServerProcess, signal: NodeJS.Signals): Promise<{ code: number | null, signal: NodeJS.Signals | null, ms: number }> {
  const sent = Date.now()
  server.process.kill(signal)
  const timeout = new Promise<never>((_resolve, reject) => {
    setTimeout(() => { reject(new Error(`still running 15 s after ${signal}:\n${server.output()}`)) }, 15_000).unref()
  })
  const result = await Promise.race([server.exited, timeout])
  return { ...result, ms: Date.now() - sent }
}

function logLines (server: ServerProcess): Array<Record<string, unknown>> {
  return server.output().split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line) as Record<string, unknown>)
}

async function dataDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'wa-server-'))
}

// Each test has its own DATA_DIR and port, so they run side by side.
t.jobs = 2

t.test('an invalid configuration exits with code 1 and lists every problem', async t => {
  const server = await spawnServer(t, { DATA_DIR: await dataDir(), PORT: 'abc', LOG_LEVEL: 'loud' })
  const { code } = await server.exited
  t.equal(code, 1)
  const output = server.output()
  t.match(output, /^Invalid configuration:\n/, 'the ConfigError message is printed as is')
  t.match(output, /\n {2}- PORT: /, 'PORT is named')
  t.match(output, /\n {2}- LOG_LEVEL: /, 'LOG_LEVEL is named')
  t.notMatch(output, /\bat \S+ \(/, 'no stack trace')
})

t.test('a second server on a DATA_DIR in use refuses to start, and the first keeps serving', async t => {
  const dir = await dataDir()
  const first = await spawnServer(t, { DATA_DIR: dir })
  await untilLive(first)
  // It waits out the stale-lock window (~6 s) before giving up: a live owner keeps its lock fresh.
  const second = await spawnServer(t, { DATA_DIR: dir })
  const { code } = await second.exited
  t.equal(code, 1, 'exit code 1')
  t.match(second.output(), /DATA_DIR \S+ is in use by another running process/)
  t.equal((await call(first.url, 'GET', '/health/ready')).status, 200, 'the first server is unaffected')
  t.equal((await stop(first, 'SIGTERM')).code, 0)
})


t.test('SIGTERM: exits 0 within 10 s, releases DATA_DIR, and a restart serves the data written before', async t => {
  const dir = await dataDir()
  const first = await spawnServer(t, { DATA_DIR: dir })
  await untilLive(first)
  t.equal((await call(first.url, 'GET', '/health/ready')).status, 200, 'ready')

  const adminToken = (await readFile(join(dir, 'admin-token'), 'utf8')).trim()
  const account = await call(first.url, 'POST', '/api/account', { token: adminToken, body: { name: 'acme' } })
  t.equal(account.status, 201, 'an account is created with the token from DATA_DIR/admin-token')
  const accountToken: string = account.body.account.token
  const instance = await call(first.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'sales' } })
  t.equal(instance.status, 201, 'and an instance in it')
  const instanceToken: string = instance.body.instance.token

  const stopped = await stop(first, 'SIGTERM')
  t.same({ code: stopped.code, signal: stopped.signal }, { code: 0, signal: null }, 'exit code 0')
  t.ok(stopped.ms < 10_000, `exited ${stopped.ms} ms after SIGTERM`)
  t.ok(logLines(first).some(entry => entry.msg === 'shutting down' && entry.signal === 'SIGTERM'), 'the shutdown is logged with its signal')
  await t.rejects(stat(join(dir, 'store', 'store.lock')), { code: 'ENOENT' }, 'the DATA_DIR lock is released')
  t.notOk(first.output().includes(adminToken), 'the admin token never reached the output')

  const second = await spawnServer(t, { DATA_DIR: dir })
  await untilLive(second)
  const list = await call(second.url, 'GET', '/api/instance/list', { token: accountToken })
  t.equal(list.status, 200, 'the account token still works')
  t.same(list.body.instances.map((entry: { name: string }) => entry.name), ['sales'], 'the instance is there')
  const own = await call(second.url, 'GET', '/api/instance/list', { token: instanceToken })
  t.equal(own.status, 200, 'the instance token still works')
  const accounts = await call(second.url, 'GET', '/api/account', { token: adminToken })
  t.same(accounts.body.accounts.map((entry: { name: string }) => entry.name), ['acme'], 'the same admin token, the same accounts')

  const again = await stop(second, 'SIGTERM')
  t.equal(again.code, 0)
})

t.test('SIGINT (Ctrl-C) also exits cleanly', async t => {
  const dir = await dataDir()
  const server = await spawnServer(t, { DATA_DIR: dir })
  await untilLive(server)
  const stopped = await stop(server, 'SIGINT')
  t.same({ code: stopped.code, signal: stopped.signal }, { code: 0, signal: null }, 'exit code 0')
  t.ok(stopped.ms < 10_000, `exited ${stopped.ms} ms after SIGINT`)
  t.ok(logLines(server).some(entry => entry.msg === 'shutting down' && entry.signal === 'SIGINT'), 'the shutdown is logged with its signal')
  await t.rejects(stat(join(dir, 'store', 'store.lock')), { code: 'ENOENT' }, 'the DATA_DIR lock is released')
})
