/**
 * IPC messages between bench/fanout.ts (the parent) and its two kinds of
 * children: the service (bench/fanout-server.ts) and the WebSocket clients
 * (bench/fanout-clients.ts). Every timestamp is wall-clock milliseconds with
 * sub-millisecond resolution, `performance.timeOrigin + performance.now()`,
 * comparable across processes on one machine.
 */
import { readFileSync } from 'node:fs'

/** `performance.timeOrigin + performance.now()`: wall clock, µs resolution. */
export function wallNow (): number {
  return performance.timeOrigin + performance.now()
}

/** The soft limit on open files of this process, from /proc (Linux); null elsewhere. */
export function openFilesLimit (): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find(row => row.startsWith('Max open files'))
    const value = Number(line?.split(/\s{2,}/)[1])
    return Number.isFinite(value) ? value : null
  } catch {
    return null
  }
}

/** Every bench event carries `detail: 'bench_<sequence>'`. */
export const DETAIL_PREFIX = 'bench_'

/** Environment of the children. */
export const FANOUT_ENV = {
  adminToken: 'FANOUT_ADMIN_TOKEN',
  redisUrl: 'FANOUT_REDIS_URL',
  /** Shared by every replica of one run, so they share the store and the bus channel. */
  redisPrefix: 'FANOUT_REDIS_PREFIX',
  logLevel: 'FANOUT_LOG_LEVEL'
} as const

/** Asks a child for its clock, to check that the processes agree on the time. */
export interface ClockRequest { type: 'clock', id: number }
export interface ClockReply { type: 'clock', id: number, now: number }

// Parent → service.
export type ServerRequest =
  | ClockRequest
  | { type: 'target', accountId: string, name: string }
  | { type: 'emit', seq: number }
  | { type: 'count' }
  | { type: 'profile-start', intervalUs: number }
  | { type: 'profile-stop', path: string }
  | { type: 'stop' }

// Service → parent.
export type ServerReply =
  | ClockReply
  | { type: 'ready', url: string, store: string, bus: string, openFiles: number | null }
  | { type: 'failed', message: string }
  | { type: 'target', instanceId: string }
  | {
    type: 'emitted'
    seq: number
    /** Just before app.recordState(). */
    calledAt: number
    /** When the recorder called bus.publish() (after the store update). */
    publishedAt: number
    /** When app.recordState() resolved. */
    returnedAt: number
  }
  /** From a bus listener registered after the event stream's: its fan-out loop for this event is over. */
  | { type: 'fanned', seq: number, at: number }
  | { type: 'count', sockets: number }
  | { type: 'profile-stopped', path: string }

// Parent → clients.
export type ClientsRequest =
  | ClockRequest
  /** Client i connects to urls[i % urls.length] (one URL per service replica). */
  | { type: 'open', urls: string[], token: string, count: number, concurrency: number, events: number }
  | { type: 'collect' }
  | { type: 'close' }

// Clients → parent.
export type ClientsReply =
  | ClockReply
  | { type: 'started', openFiles: number | null }
  | {
    type: 'opened'
    /** From the first connection attempt until every client got its snapshot. */
    connectMs: number
    opened: number
    failures: number
    firstFailure: string | null
  }
  /** Every open client has received event `seq`. */
  | { type: 'complete', seq: number, at: number }
  | {
    type: 'collected'
    count: number
    events: number
    /** receipts[seq * count + client]: receipt time, NaN when never received. */
    receipts: Float64Array
    /** Clients closed by the server or by an error after they opened. */
    closedEarly: number
    closeCodes: Record<string, number>
    /** Frames that were neither the snapshot nor a bench event. */
    otherFrames: number
  }
  | { type: 'closed' }
