import type { Test } from 'tap'
import { call, createTenant, startApp, type TestApp } from './app.js'
import { type EventRecorder, recordEvents } from './events.js'
import { seedSavedSession } from './sessions.js'
import { generateTrustRoot, installTestTrustRoot, startFakeWhatsAppServer, type FakeWhatsAppServer, type FakeWhatsAppServerOptions } from './wa-server/index.js'

/** The paired device of a saved session seeded by these helpers. */
export const SAVED_JID = '5511999999999:1@s.whatsapp.net'

/** One test trust root per test process: the local servers' certificate chains are signed by it. */
const root = generateTrustRoot()

/** Makes the service's Baileys trust the local servers, for the rest of the test file. */
export function trustLocalWhatsApp (t: Test): void {
  t.teardown(installTestTrustRoot(root.public))
}

export async function fakeWhatsApp (t: Test, options: FakeWhatsAppServerOptions = {}): Promise<FakeWhatsAppServer> {
  const server = await startFakeWhatsAppServer({ root, ...options })
  t.teardown(async () => { await server.close() })
  return server
}

/** Service settings that point at a local server and keep failures quick. */
export function whatsappEnv (server: FakeWhatsAppServer, extra: Record<string, string> = {}): Record<string, string> {
  return {
    WA_WS_URL: server.url,
    WA_QUERY_TIMEOUT_MS: '2000',
    RECONNECT_DIAL_TIMEOUT_MS: '3000',
    RECONNECT_BACKOFF_BASE_MS: '200',
    RECONNECT_BACKOFF_MAX_MS: '1000',
    ...extra
  }
}

export interface ConnectedInstance {
  service: TestApp
  events: EventRecorder
  accountId: string
  accountToken: string
  instanceToken: string
}

/** A service with one instance, "sales", reconnected from a saved session and connected. */
export async function connectedInstance (t: Test, server: FakeWhatsAppServer, env: Record<string, string> = {}): Promise<ConnectedInstance> {
  const service = await startApp(t, { env: whatsappEnv(server, env) })
  const events = recordEvents(t, service.app)
  const tenant = await createTenant(service)
  await seedSavedSession(service.app, tenant.accountId, 'sales', SAVED_JID)
  const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: tenant.instanceToken })
  if (reply.status !== 200) throw new Error(`reconnect failed: ${JSON.stringify(reply.body)}`)
  await events.waitFor(e => e.state === 'connected')
  return { service, events, ...tenant }
}
