/**
 * The messages bench/http.ts (the load generator) and bench/server.ts (the
 * server under test, a child process) exchange over the fork IPC channel.
 */

/** Which server a child runs: a bare Fastify baseline, or the whole app. */
export type ServerMode = 'bare' | 'app'

/** Settings the parent hands to a child through its environment. */
export const SERVER_ENV = {
  mode: 'BENCH_SERVER_MODE',
  adminToken: 'BENCH_ADMIN_TOKEN',
  redisUrl: 'BENCH_REDIS_URL',
  logLevel: 'BENCH_LOG_LEVEL',
  rateLimitMax: 'BENCH_RATE_LIMIT_MAX'
} as const

export type ChildMessage =
  | { type: 'ready', url: string, store: string | null }
  | { type: 'failed', message: string }
  /** The child's own CPU time so far (process.cpuUsage(), µs), answering `usage`. */
  | { type: 'usage', user: number, system: number }

export type ParentMessage = { type: 'stop' } | { type: 'usage' }

export function isChildMessage (value: unknown): value is ChildMessage {
  if (typeof value !== 'object' || value === null) return false
  const type = (value as { type?: unknown }).type
  return type === 'ready' || type === 'failed' || type === 'usage'
}

export function isParentMessage (value: unknown): value is ParentMessage {
  if (typeof value !== 'object' || value === null) return false
  const type = (value as { type?: unknown }).type
  return type === 'stop' || type === 'usage'
}
