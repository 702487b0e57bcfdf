import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../app.js'
import { loadConfig } from '../config/index.js'

export interface BenchAppOptions {
  adminToken: string
  logLevel: string
  /** Every request (and WebSocket upgrade) is counted: the limit stays on, out of reach. */
  rateLimitMax: string
  redisUrl?: string
  /** The Redis namespace; a fresh one per start by default, so a run never sees an earlier run's keys. */
  redisPrefix?: string
}

export interface BenchApp {
  app: FastifyInstance
  url: string
  /** Closes the app and removes its temporary DATA_DIR. */
  close: () => Promise<void>
}

/** The real app, as server.ts builds it, in a temporary DATA_DIR and listening on 127.0.0.1, for a benchmark's service process. */
export async function startBenchApp (options: BenchAppOptions): Promise<BenchApp> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wa-bench-'))
  const config = loadConfig({
    LOG_LEVEL: options.logLevel,
    ADMIN_TOKEN: options.adminToken,
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    PORT: '0',
    // Nothing in a benchmark may try to reach the real WhatsApp.
    WA_WS_URL: 'ws://127.0.0.1:1/ws/chat',
    RATE_LIMIT_MAX: options.rateLimitMax,
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: options.redisPrefix ?? `bench:${randomUUID()}:`
  })
  const app = await buildApp({ config })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    app,
    url,
    close: async () => {
      try {
        await app.close()
      } finally {
        await rm(dataDir, { recursive: true, force: true })
      }
    }
  }
}
