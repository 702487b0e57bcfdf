import fp from 'fastify-plugin'
import type { Logger } from 'pino'
import { installStrictCertificateVerify } from '../services/sessions/certificate-verify.js'
import { createSessionGate } from '../services/sessions/session-gate.js'
import { createSessionService, type SessionService } from '../services/sessions/session-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionService
  }
}

/** Grace beyond Baileys' keepalive interval before a silent connection counts as dead. */
const SILENCE_GRACE_MS = 5_000

export default fp(async (app) => {
  const { config } = app
  installStrictCertificateVerify()
  const log = app.log as Logger
  const gate = createSessionGate({
    store: app.store,
    secretBox: app.secretBox,
    log,
    settings: {
      wsUrl: config.WA_WS_URL,
      keepAliveIntervalMs: config.WA_KEEPALIVE_MS,
      connectTimeoutMs: config.RECONNECT_DIAL_TIMEOUT_MS,
      defaultQueryTimeoutMs: config.WA_QUERY_TIMEOUT_MS,
      qrTimeoutMs: config.WA_QR_TIMEOUT_MS,
      logLevel: config.WA_LOG_LEVEL
    }
  })
  const sessions = createSessionService({
    store: app.store,
    recordState: app.recordState,
    gate,
    log,
    dialTimeoutMs: config.RECONNECT_DIAL_TIMEOUT_MS,
    qrWaitMs: config.CONNECT_QR_TIMEOUT_MS,
    silenceLimitMs: config.WA_KEEPALIVE_MS + SILENCE_GRACE_MS,
    backoff: { baseMs: config.RECONNECT_BACKOFF_BASE_MS, maxMs: config.RECONNECT_BACKOFF_MAX_MS },
    resumeConcurrency: config.RESUME_CONCURRENCY
  })
  app.decorate('sessions', sessions)
  // Resume in the background once listening: readiness does not wait for WhatsApp.
  app.addHook('onReady', async () => {
    void sessions.resumeAll().catch((error: unknown) => { app.log.error({ err: error }, 'resuming sessions failed') })
  })
  app.addHook('preClose', async () => { await sessions.close() })
}, { name: 'sessions', dependencies: ['config', 'store', 'state-events', 'secret-box'] })
