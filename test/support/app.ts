import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../app.js'
import { loadConfig } from '../../config/index.js'

export interface TestApp {
  app: FastifyInstance
  /** http://127.0.0.1:<port> */
  url: string
  adminToken: string
  dataDir: string
  /** Every log line the app wrote, raw. */
  logs: string[]
  close: () => Promise<void>
}

export interface TestAppOptions {
  /** Environment-style settings on top of the test defaults. */
  env?: Record<string, string | undefined>
  /** Reuse a data directory, as a restarted process would. */
  dataDir?: string
  /** Listen on a real port (default) or only serve app.inject(). */
  listen?: boolean
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'
/** Shared by every test app, as replicas and restarts on one store must share it. */
export const ENCRYPTION_KEY = 'test-encryption-key-0123456789abcdef'

/** Builds the app as server.ts does, with test settings, and closes it when the test ends. */
export async function startApp (t: Test, options: TestAppOptions = {}): Promise<TestApp> {
  const dataDir = options.dataDir ?? await mkdtemp(join(tmpdir(), 'wa-app-'))
  const logs: string[] = []
  const logStream = new Writable({
    write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString()); done() }
  })
  const config = loadConfig({
    LOG_LEVEL: 'info',
    ADMIN_TOKEN,
    ENCRYPTION_KEY,
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    PORT: '0',
    // Nothing in a test may try to reach the real WhatsApp.
    WA_WS_URL: 'ws://127.0.0.1:1/ws/chat',
    ...options.env
  })
  const app = await buildApp({ config, logStream })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await app.close()
  }
  t.teardown(close)
  let url = ''
  if (options.listen !== false) url = await app.listen({ port: 0, host: '127.0.0.1' })
  else await app.ready()
  return { app, url, adminToken: ADMIN_TOKEN, dataDir, logs, close }
}

export interface Reply<T = any> {
  status: number
  headers: Headers
  body: T
}

/** A real HTTP request against a listening app. */
export async function call<T = any> (base: string, method: string, path: string, options: { token?: string, body?: unknown, headers?: Record<string, string>, rawBody?: string } = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers.token = options.token
  let body: string | undefined = options.rawBody
  if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers['content-type'] ??= 'application/json'
  }
  const response = await fetch(base + path, { method, headers, body })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? null : JSON.parse(text) }
}

/** An account and one instance in it, created through the API. */
export async function createTenant (testApp: TestApp, instanceName = 'sales'): Promise<{ accountId: string, accountToken: string, instanceToken: string }> {
  const account = await call(testApp.url, 'POST', '/api/account', { token: testApp.adminToken, body: { name: 'acme' } })
  if (account.status !== 201) throw new Error(`account creation failed: ${JSON.stringify(account.body)}`)
  const accountToken: string = account.body.account.token
  const instance = await call(testApp.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: instanceName } })
  if (instance.status !== 201) throw new Error(`instance creation failed: ${JSON.stringify(instance.body)}`)
  return { accountId: account.body.account.id, accountToken, instanceToken: instance.body.instance.token }
}
