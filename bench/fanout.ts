/**
 * WebSocket fan-out benchmark: `npm run bench:fanout`.
 *
 * One instance, N subscribers on `GET /ws` (1,000 and 10,000 by default), on
 * the embedded bus and through Redis pub/sub (a private redis-server this
 * script starts on a free port and kills at the end). Three kinds of process:
 *
 * - the service (bench/fanout-server.ts, from a tsc build, as `npm start`
 *   runs the service): the real app, listening on
 *   127.0.0.1; for each event it stamps the wall clock and calls the real
 *   recorder, `app.recordState(instance, { detail: 'bench_<seq>', … })`;
 * - the subscribers (bench/fanout-clients.ts): one process holding every
 *   `ws` client, stamping the receipt time of each bench frame per client;
 * - this parent, which creates the account and instance over HTTP, drives
 *   both over IPC and does the arithmetic.
 *
 * Latency of an event for a subscriber = its receipt time − the time the
 * recorder was called (both `performance.timeOrigin + performance.now()`,
 * one machine, one wall clock; the agreement of the processes' clocks is
 * checked and reported). p50/p99 are over every (subscriber, event) pair;
 * "last subscriber" is, per event, the time until every subscriber had it.
 * Events are sent one at a time: the next one starts once every subscriber
 * has the previous one, and no sooner than BENCH_FANOUT_INTERVAL_MS after it,
 * so each event's fan-out is measured on its own.
 *
 * Environment (all optional):
 *   BENCH_FANOUT_MODES        floor,embedded,redis (floor: a bare `ws` broadcast, no app, as the reference)
 *   BENCH_FANOUT_SUBSCRIBERS  1000,10000
 *   BENCH_FANOUT_EVENTS       measured events per case (100)
 *   BENCH_FANOUT_WARMUP       unmeasured events per case, first (20)
 *   BENCH_FANOUT_INTERVAL_MS  minimum time between two events' starts (75)
 *   BENCH_FANOUT_GAP_MS       minimum quiet time after the last subscriber got an event (25)
 *   BENCH_FANOUT_CONCURRENCY  WebSocket handshakes in flight while connecting (200)
 *   BENCH_FANOUT_REPLICAS     service processes in Redis mode, sharing the store and the bus;
 *                             subscribers are spread evenly over them, events recorded on the first (1)
 *   BENCH_FANOUT_TIMEOUT_MS   how long an event may take to reach everyone (15000)
 *   BENCH_FANOUT_LOG_LEVEL    the service's LOG_LEVEL (warn)
 *   BENCH_FANOUT_PROFILE      a directory: profile the service (V8 CPU profiler) during each
 *                             case's measured events and print where the time went
 *   BENCH_QUIET_WAIT          seconds to wait, before each case, for other processes to leave the machine quiet (30)
 *   BENCH_RETRIES             how many times a case disturbed by other processes is run again; the least disturbed run is kept (2)
 *   BENCH_NO_WRITE=1          print only, leave bench/RESULTS.md alone
 *   BENCH_RESULTS             where to write the results (bench/RESULTS.md)
 *
 * The exit code is 1 when the 10,000-subscriber target is missed or a case
 * lost a client or an event.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compileProject, envInt, machineBusyMs, processCpuMs, spawnRedisServer, writeResultsSection } from './common.js'
import { formatSummary, summarizeProfile } from './fanout-profile.js'
import { type ClientsReply, type ClientsRequest, type ClockReply, type ClockRequest, FANOUT_ENV, openFilesLimit, type ServerReply, type ServerRequest, wallNow } from './fanout-protocol.js'

const here = dirname(fileURLToPath(import.meta.url))
const projectRoot = resolve(here, '..')
const INSTANCE_NAME = 'fanout'
/** p99 latency target (ms) for the cases with at least TARGET_SUBSCRIBERS subscribers. */
const TARGET_P99_MS = 50
const TARGET_SUBSCRIBERS = 10_000
/** Other processes using more than this share of the machine during a case make its latencies suspect. */
const NOISE_LIMIT_PERCENT = 10
/** File descriptors each child needs beyond one per WebSocket. */
const SPARE_FILES = 1024

function envList (name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback).split(',').map(item => item.trim()).filter(item => item !== '')
}

/** `floor`: a bare `ws` broadcast (bench/fanout-floor-server.ts), the least a Node WebSocket server can do, as the reference. */
type Mode = 'floor' | 'embedded' | 'redis'

const settings = {
  modes: envList('BENCH_FANOUT_MODES', 'floor,embedded,redis').map(mode => {
    if (mode !== 'floor' && mode !== 'embedded' && mode !== 'redis') throw new Error(`BENCH_FANOUT_MODES: unknown mode ${mode}`)
    return mode as Mode
  }),
  subscribers: envList('BENCH_FANOUT_SUBSCRIBERS', '1000,10000').map(count => {
    const value = Number(count)
    if (!Number.isInteger(value) || value < 1) throw new Error(`BENCH_FANOUT_SUBSCRIBERS: not a count: ${count}`)
    return value
  }),
  events: envInt('BENCH_FANOUT_EVENTS', 100, 1),
  warmup: envInt('BENCH_FANOUT_WARMUP', 20, 0),
  intervalMs: envInt('BENCH_FANOUT_INTERVAL_MS', 75, 0),
  gapMs: envInt('BENCH_FANOUT_GAP_MS', 25, 0),
  concurrency: envInt('BENCH_FANOUT_CONCURRENCY', 200, 1),
  replicas: envInt('BENCH_FANOUT_REPLICAS', 1, 1),
  timeoutMs: envInt('BENCH_FANOUT_TIMEOUT_MS', 15_000, 100),
  logLevel: process.env.BENCH_FANOUT_LOG_LEVEL ?? 'warn',
  profileDir: process.env.BENCH_FANOUT_PROFILE === undefined || process.env.BENCH_FANOUT_PROFILE === '' ? null : resolve(process.env.BENCH_FANOUT_PROFILE),
  quietWait: envInt('BENCH_QUIET_WAIT', 30, 0),
  retries: envInt('BENCH_RETRIES', 2, 0),
  noWrite: process.env.BENCH_NO_WRITE === '1',
  resultsPath: resolve(process.env.BENCH_RESULTS ?? join(here, 'RESULTS.md'))
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolveSleep => setTimeout(resolveSleep, Math.max(0, ms))) }

// ---------------------------------------------------------------- machine

async function waitForQuiet (): Promise<number | null> {
  if (machineBusyMs() === null) return null
  const deadline = Date.now() + settings.quietWait * 1000
  let announced = false
  let busy = 0
  do {
    const before = machineBusyMs() ?? 0
    const started = performance.now()
    await sleep(1000)
    busy = ((machineBusyMs() ?? 0) - before) / ((performance.now() - started) * os.cpus().length) * 100
    if (busy < NOISE_LIMIT_PERCENT) return busy
    if (!announced) process.stdout.write(`(machine busy ${busy.toFixed(0)} %, waiting up to ${settings.quietWait} s) `)
    announced = true
  } while (Date.now() < deadline)
  return busy
}

function packageVersion (name: string): string {
  try {
    return (JSON.parse(readFileSync(join(projectRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return '?'
  }
}

function machineLine (redisVersion: string | null): string {
  const cpus = os.cpus()
  const memory = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM`
  return `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${memory}, Node ${process.version}, ${os.type()} ${os.release()} (${os.arch()})` +
    `${redisVersion === null ? '' : `; redis-server ${redisVersion}`}; fastify ${packageVersion('fastify')}, @fastify/websocket ${packageVersion('@fastify/websocket')}, ws ${packageVersion('ws')}, ioredis ${packageVersion('ioredis')}`
}

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>()

interface RedisServer { url: string, version: string, pid: number | undefined, stop: () => Promise<void> }

async function startRedis (): Promise<RedisServer> {
  const { url, version, child } = await spawnRedisServer('BENCH_FANOUT_MODES=embedded skips the Redis cases')
  children.add(child)
  return {
    url,
    version,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>(resolveExit => { child.once('exit', () => { resolveExit() }) })
      child.kill('SIGKILL')
      await exited
      children.delete(child)
    }
  }
}

/** A child speaking JSON-ish messages over IPC (advanced serialization, so typed arrays travel as such). */
/** Checks waiting for any child's message: every message from any child wakes them all. */
const waiters = new Set<() => void>()

/** Resolves once `condition()` holds, re-checked on every message of any child; false on timeout. */
async function until (condition: () => boolean, timeoutMs: number, watched: Array<{ failed: Error | null }>): Promise<boolean> {
  return await new Promise((resolveUntil, reject) => {
    const check = (): void => {
      const failure = watched.find(child => child.failed !== null)?.failed
      if (condition()) {
        done()
        resolveUntil(true)
      } else if (failure !== undefined && failure !== null) {
        done()
        reject(failure)
      }
    }
    const timer = setTimeout(() => { done(); resolveUntil(false) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); waiters.delete(check) }
    waiters.add(check)
    check()
  })
}

class Child<Request, Reply extends { type: string }> {
  private failure: Error | null = null
  readonly messages: Reply[] = []
  onMessage: ((message: Reply) => void) | null = null

  constructor (readonly name: string, readonly process: ChildProcess) {
    process.on('message', (message: Reply) => {
      if (message.type === 'failed') this.failure = new Error(`${name} failed: ${(message as unknown as { message: string }).message}`)
      else if (this.onMessage !== null) this.onMessage(message)
      else this.messages.push(message)
      this.wake()
    })
    process.once('exit', (code, signal) => {
      this.failure ??= new Error(`${name} exited (${code ?? signal ?? '?'})`)
      this.wake()
    })
  }

  get pid (): number | undefined { return this.process.pid }

  private wake (): void {
    for (const waker of [...waiters]) waker()
  }

  send (message: Request): void {
    this.process.send(message as object)
  }

  /** The first kept message (removed from the list) matching `match`, past or future. */
  async next<T extends Reply['type']> (type: T, timeoutMs = 60_000, match: (message: Extract<Reply, { type: T }>) => boolean = () => true): Promise<Extract<Reply, { type: T }>> {
    return await new Promise((resolveNext, reject) => {
      const check = (): void => {
        const index = this.messages.findIndex(message => message.type === type && match(message as Extract<Reply, { type: T }>))
        if (index !== -1) {
          done()
          resolveNext(this.messages.splice(index, 1)[0] as Extract<Reply, { type: T }>)
        } else if (this.failure !== null) {
          done()
          reject(this.failure)
        }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name}: no ${type} within ${timeoutMs} ms`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); waiters.delete(check) }
      waiters.add(check)
      check()
    })
  }

  get failed (): Error | null { return this.failure }

  async exit (timeoutMs = 30_000): Promise<void> {
    const child = this.process
    if (child.exitCode !== null || child.signalCode !== null) { children.delete(child); return }
    const exited = new Promise<void>(resolveExit => { child.once('exit', () => { resolveExit() }) })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    await exited
    clearTimeout(timer)
    children.delete(child)
  }
}

/**
 * Starts one of the benchmark's scripts from the tsc build in `buildDir`, with
 * IPC. When this process's open-files limit is below `openFiles`, the child is
 * started through `sh -c 'ulimit -n …'`.
 */
function spawnBuilt (buildDir: string, script: string, env: Record<string, string>, openFiles: number): ChildProcess {
  const nodeArgs = [join(buildDir, 'bench', script)]
  const current = openFilesLimit()
  const raise = current !== null && current < openFiles
  const [command, args] = raise
    ? ['sh', ['-c', `ulimit -n ${openFiles} || exit 97; exec "$0" "$@"`, process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs]
  const child = spawn(command, args, {
    cwd: projectRoot,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
    env: { ...process.env, ...env }
  })
  children.add(child)
  child.once('exit', code => { if (code === 97) console.error(`could not raise the open-files limit of ${script} to ${openFiles} (ulimit -Hn is lower)`) })
  return child
}

type ServerChild = Child<ServerRequest, ServerReply>
type ClientsChild = Child<ClientsRequest, ClientsReply>

/** The other process's clock minus ours, from the IPC round trip with the smallest delay. */
async function clockOffset (child: ServerChild | ClientsChild): Promise<{ offsetMs: number, rttMs: number }> {
  const probe = child as unknown as Child<ClockRequest, ClockReply>
  let best = { offsetMs: 0, rttMs: Infinity }
  for (let id = 0; id < 20; id++) {
    const sent = wallNow()
    probe.send({ type: 'clock', id })
    const reply = await probe.next('clock', 10_000, message => message.id === id)
    const received = wallNow()
    if (received - sent < best.rttMs) best = { offsetMs: reply.now - (sent + received) / 2, rttMs: received - sent }
  }
  return best
}

// ---------------------------------------------------------------- HTTP

async function call<T> (base: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number, body: T }> {
  const response = await fetch(base + path, {
    method,
    headers: { token, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as T }
}

/** An account and one instance in it, created through the API as a client would. */
async function createTenant (base: string, adminToken: string): Promise<{ accountId: string, accountToken: string }> {
  const account = await call<{ account: { id: string, token: string } }>(base, 'POST', '/api/account', adminToken, { name: 'fanout-bench' })
  if (account.status !== 201) throw new Error(`account creation failed: ${account.status} ${JSON.stringify(account.body)}`)
  const instance = await call(base, 'POST', '/api/instance/new', account.body.account.token, { name: INSTANCE_NAME })
  if (instance.status !== 201) throw new Error(`instance creation failed: ${instance.status} ${JSON.stringify(instance.body)}`)
  return { accountId: account.body.account.id, accountToken: account.body.account.token }
}

// ---------------------------------------------------------------- statistics

/** Nearest-rank percentile of ascending `sorted`; NaN when empty. */
function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p / 100 * sorted.length)))
  return sorted[rank - 1] as number
}

interface Spread { p50: number, p99: number, max: number }

function spread (values: number[] | Float64Array): Spread {
  const sorted = Float64Array.from(values).sort()
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1] as number }
}

interface CaseResult {
  mode: Mode
  replicas: number
  subscribers: number
  opened: number
  connectFailures: number
  firstFailure: string | null
  connectMs: number
  events: number
  /** Events not received by every subscriber within BENCH_FANOUT_TIMEOUT_MS. */
  incompleteEvents: number
  missingReceipts: number
  closedEarly: number
  closeCodes: Record<string, number>
  pairs: Spread
  first: Spread
  last: Spread
  /** recordState() called → bus.publish() called: the store update. */
  toPublish: Spread
  /** recordState() called → the event stream's fan-out loop over. */
  toLoopEnd: Spread
  /** bus.publish() called → the fan-out loop over (Redis: publish, round trip, parse, loop). */
  publishToLoopEnd: Spread
  /** The fan-out loop over → the last subscriber's receipt. */
  loopEndToLast: Spread
  cpu: { serviceMs: number | null, clientsMs: number | null, redisMs: number | null, wallMs: number, otherPercent: number | null }
  quietBefore: number | null
  /** Runs of this case, the kept one being the least disturbed by other processes. */
  attempts: number
  profiles: string[]
  problems: string[]
}

interface EventTimes { calledAt: number, publishedAt: number, returnedAt: number, loopEndAt: number | null, completeAt: number | null }

async function runCase (buildDir: string, mode: Mode, servers: ServerChild[], redis: RedisServer | null, urls: string[], token: string, subscribers: number): Promise<CaseResult> {
  // The first replica records the events; with several (Redis), every replica fans out to its own clients.
  const server = servers[0] as ServerChild
  const serviceCpuMs = (): number | null => {
    const values = servers.map(replica => processCpuMs(replica.pid))
    return values.some(value => value === null) ? null : values.reduce<number>((sum, value) => sum + (value as number), 0)
  }
  const label = caseLabel(mode, servers.length, subscribers)
  const total = settings.warmup + settings.events
  const clients: ClientsChild = new Child('clients', spawnBuilt(buildDir, 'fanout-clients.js', {}, subscribers + SPARE_FILES))
  const started = await clients.next('started')
  if (started.openFiles !== null && started.openFiles < subscribers + 64) {
    console.warn(`WARNING: the clients' open-files limit is ${started.openFiles}, below ${subscribers} connections`)
  }
  const problems: string[] = []
  try {
    process.stdout.write(`  ${label}: connecting… `)
    clients.send({ type: 'open', urls, token, count: subscribers, concurrency: settings.concurrency, events: total })
    const opened = await clients.next('opened', 10 * 60_000)
    process.stdout.write(`${opened.opened} open in ${(opened.connectMs / 1000).toFixed(1)} s${opened.failures > 0 ? ` (${opened.failures} failed: ${String(opened.firstFailure)})` : ''}; `)
    if (opened.failures > 0) problems.push(`${opened.failures} of ${subscribers} clients failed to connect (first: ${String(opened.firstFailure)})`)

    const clientsClock = await clockOffset(clients)
    const serverClock = await clockOffset(server)
    const skew = Math.abs(clientsClock.offsetMs - serverClock.offsetMs)
    const skewBound = (clientsClock.rttMs + serverClock.rttMs) / 2
    if (skew > Math.max(1, skewBound)) problems.push(`the service's and the clients' clocks differ by ${skew.toFixed(2)} ms`)

    const quietBefore = await waitForQuiet()

    // Messages arrive in any order relative to each other: keep them by sequence number.
    const times = new Map<number, EventTimes>()
    const pendingEmitted = new Map<number, Extract<ServerReply, { type: 'emitted' }>>()
    // Per event, when each replica's fan-out loop was over.
    const loopEnds = new Map<number, number[]>()
    const loopEndOf = (seq: number): number | null => {
      const ends = loopEnds.get(seq)
      return ends === undefined || ends.length < servers.length ? null : Math.max(...ends)
    }
    const complete = new Map<number, number>()
    for (const replica of servers) {
      replica.onMessage = message => {
        if (message.type === 'emitted' && replica === server) pendingEmitted.set(message.seq, message)
        else if (message.type === 'fanned') loopEnds.set(message.seq, [...loopEnds.get(message.seq) ?? [], message.at])
        else replica.messages.push(message)
      }
    }
    clients.onMessage = message => {
      if (message.type === 'complete') complete.set(message.seq, message.at)
      else clients.messages.push(message)
    }

    let cpuBefore: { service: number | null, clients: number | null, redis: number | null, machine: number | null, parent: number, wall: number } | null = null
    let incompleteEvents = 0
    const profilePaths = settings.profileDir === null
      ? []
      : servers.map((_replica, index) => join(settings.profileDir as string, `fanout-${mode}${servers.length > 1 ? `-r${index + 1}of${servers.length}` : ''}-${subscribers}.cpuprofile`))
    process.stdout.write(`${settings.warmup} warm-up + ${settings.events} events… `)
    for (let seq = 0; seq < total; seq++) {
      if (seq === settings.warmup) {
        for (const replica of profilePaths.length > 0 ? servers : []) replica.send({ type: 'profile-start', intervalUs: 100 })
        const usage = process.cpuUsage()
        cpuBefore = { service: serviceCpuMs(), clients: processCpuMs(clients.pid), redis: processCpuMs(redis?.pid), machine: machineBusyMs(), parent: (usage.user + usage.system) / 1000, wall: performance.now() }
      }
      const startedAt = performance.now()
      server.send({ type: 'emit', seq })
      const done = await until(() => complete.has(seq) && pendingEmitted.has(seq) && loopEndOf(seq) !== null, settings.timeoutMs, [...servers, clients])
      if (!done) {
        if (seq >= settings.warmup) incompleteEvents++
        // The recorder must at least have run, or the service is stuck.
        if (!pendingEmitted.has(seq)) throw new Error(`the recorder did not return for event ${seq} within ${settings.timeoutMs} ms`)
      }
      const emitted = pendingEmitted.get(seq)
      if (emitted !== undefined) {
        times.set(seq, { calledAt: emitted.calledAt, publishedAt: emitted.publishedAt, returnedAt: emitted.returnedAt, loopEndAt: loopEndOf(seq), completeAt: complete.get(seq) ?? null })
      }
      const elapsed = performance.now() - startedAt
      await sleep(Math.max(settings.intervalMs - elapsed, settings.gapMs))
    }
    const usage = process.cpuUsage()
    const cpuAfter = { service: serviceCpuMs(), clients: processCpuMs(clients.pid), redis: processCpuMs(redis?.pid), machine: machineBusyMs(), parent: (usage.user + usage.system) / 1000, wall: performance.now() }
    for (const replica of servers) replica.onMessage = null
    for (const [index, path] of profilePaths.entries()) {
      const replica = servers[index] as ServerChild
      replica.send({ type: 'profile-stop', path })
      await replica.next('profile-stopped', 120_000)
    }
    clients.onMessage = null
    process.stdout.write('collecting… ')

    clients.send({ type: 'collect' })
    const collected = await clients.next('collected', 120_000)
    const { receipts } = collected
    const pairs = new Float64Array(subscribers * settings.events)
    let pairCount = 0
    let missingReceipts = 0
    const first: number[] = []
    const last: number[] = []
    const toPublish: number[] = []
    const toLoopEnd: number[] = []
    const publishToLoopEnd: number[] = []
    const loopEndToLast: number[] = []
    for (let seq = settings.warmup; seq < total; seq++) {
      const event = times.get(seq)
      if (event === undefined) { missingReceipts += subscribers; continue }
      let min = Infinity
      let max = -Infinity
      let missing = 0
      for (let client = 0; client < subscribers; client++) {
        const at = receipts[seq * subscribers + client] as number
        if (Number.isNaN(at)) { missing++; continue }
        const latency = at - event.calledAt
        pairs[pairCount++] = latency
        if (latency < min) min = latency
        if (latency > max) max = latency
      }
      missingReceipts += missing
      toPublish.push(event.publishedAt - event.calledAt)
      if (event.loopEndAt !== null) {
        toLoopEnd.push(event.loopEndAt - event.calledAt)
        publishToLoopEnd.push(event.loopEndAt - event.publishedAt)
      }
      if (missing === 0) {
        first.push(min)
        last.push(max)
        if (event.loopEndAt !== null) loopEndToLast.push(event.calledAt + max - event.loopEndAt)
      }
    }
    if (missingReceipts > 0) problems.push(`${missingReceipts} (subscriber, event) receipts missing`)
    if (collected.closedEarly > 0) problems.push(`${collected.closedEarly} clients closed early (${JSON.stringify(collected.closeCodes)})`)
    if (incompleteEvents > 0) problems.push(`${incompleteEvents} events did not reach every subscriber within ${settings.timeoutMs} ms`)

    let otherPercent: number | null = null
    const ours = [cpuAfter.service, cpuBefore?.service, cpuAfter.clients, cpuBefore?.clients]
    if (cpuBefore !== null && cpuBefore.machine !== null && cpuAfter.machine !== null && ours.every(value => value !== null && value !== undefined)) {
      const redisMs = cpuAfter.redis !== null && cpuBefore.redis !== null ? cpuAfter.redis - cpuBefore.redis : 0
      const oursMs = (cpuAfter.service as number) - (cpuBefore.service as number) + (cpuAfter.clients as number) - (cpuBefore.clients as number) + redisMs + cpuAfter.parent - cpuBefore.parent
      otherPercent = Math.max(0, (cpuAfter.machine - cpuBefore.machine - oursMs) / ((cpuAfter.wall - cpuBefore.wall) * os.cpus().length) * 100)
    }
    const diff = (after: number | null, before: number | null | undefined): number | null => after === null || before === null || before === undefined ? null : after - before

    const result: CaseResult = {
      mode,
      replicas: servers.length,
      subscribers,
      opened: opened.opened,
      connectFailures: opened.failures,
      firstFailure: opened.firstFailure,
      connectMs: opened.connectMs,
      events: settings.events,
      incompleteEvents,
      missingReceipts,
      closedEarly: collected.closedEarly,
      closeCodes: collected.closeCodes,
      pairs: spread(pairs.subarray(0, pairCount)),
      first: spread(first),
      last: spread(last),
      toPublish: spread(toPublish),
      toLoopEnd: spread(toLoopEnd),
      publishToLoopEnd: spread(publishToLoopEnd),
      loopEndToLast: spread(loopEndToLast),
      cpu: {
        serviceMs: diff(cpuAfter.service, cpuBefore?.service),
        clientsMs: diff(cpuAfter.clients, cpuBefore?.clients),
        redisMs: diff(cpuAfter.redis, cpuBefore?.redis),
        wallMs: cpuAfter.wall - (cpuBefore?.wall ?? cpuAfter.wall),
        otherPercent
      },
      quietBefore,
      attempts: 1,
      profiles: profilePaths,
      problems
    }
    console.log(`p50 ${ms(result.pairs.p50)} ms, p99 ${ms(result.pairs.p99)} ms, last p50 ${ms(result.last.p50)} / p99 ${ms(result.last.p99)} ms` +
      `, service CPU ${result.cpu.serviceMs === null ? '-' : ms(result.cpu.serviceMs / result.events)} ms/event, other processes ${result.cpu.otherPercent === null ? '-' : result.cpu.otherPercent.toFixed(0)} %` +
      ` (clock skew ${skew.toFixed(2)} ms ≤ ±${skewBound.toFixed(2)})`)
    for (const path of profilePaths) {
      console.log(`  profile: ${path}`)
      console.log(formatSummary(await summarizeProfile(path, 30)).split('\n').map(line => `    ${line}`).join('\n'))
    }
    return result
  } finally {
    clients.onMessage = null
    for (const replica of servers) replica.onMessage = null
    if (clients.process.connected) {
      clients.send({ type: 'close' })
      await clients.next('closed', 60_000).catch(() => undefined)
    }
    await clients.exit()
    // The next case starts with no leftover sockets on the service.
    for (const replica of servers) await waitForSockets(replica, 0)
  }
}

async function waitForSockets (server: ServerChild, count: number): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    server.send({ type: 'count' })
    const reply = await server.next('count', 10_000)
    if (reply.sockets <= count) return
    await sleep(200)
  }
  throw new Error(`the service still holds sockets after 60 s (expected ${count})`)
}

async function runMode (buildDir: string, mode: Mode, redis: RedisServer | null): Promise<CaseResult[]> {
  const adminToken = randomBytes(24).toString('hex')
  const replicas = mode === 'redis' ? settings.replicas : 1
  const maxSubscribers = Math.max(...settings.subscribers)
  const redisPrefix = `bench:fanout:${randomUUID()}:`
  const script = mode === 'floor' ? 'fanout-floor-server.js' : 'fanout-server.js'
  const servers: ServerChild[] = Array.from({ length: replicas }, (_unused, index) => new Child(replicas > 1 ? `service ${index + 1}` : 'service', spawnBuilt(buildDir, script, {
    [FANOUT_ENV.adminToken]: adminToken,
    [FANOUT_ENV.logLevel]: settings.logLevel,
    ...(redis === null ? {} : { [FANOUT_ENV.redisUrl]: redis.url, [FANOUT_ENV.redisPrefix]: redisPrefix })
  }, maxSubscribers + SPARE_FILES)))
  try {
    const urls: string[] = []
    for (const server of servers) {
      const ready = await server.next('ready', 120_000)
      if (ready.bus !== mode) throw new Error(`expected the ${mode} bus, the service opened ${ready.bus}`)
      if (ready.openFiles !== null && ready.openFiles < maxSubscribers + 64) console.warn(`WARNING: the service's open-files limit is ${ready.openFiles}, below ${maxSubscribers} connections`)
      console.log(`${server.name} (${mode}): on ${ready.url} (store ${ready.store}, bus ${ready.bus}, open files ${String(ready.openFiles)})`)
      urls.push(ready.url)
    }
    const primary = servers[0] as ServerChild
    // The floor server has no API and takes any token.
    const tenant = mode === 'floor' ? { accountId: 'floor', accountToken: 'floor' } : await createTenant(urls[0] as string, adminToken)
    primary.send({ type: 'target', accountId: tenant.accountId, name: INSTANCE_NAME })
    await primary.next('target')
    const results: CaseResult[] = []
    for (const subscribers of settings.subscribers) {
      // A case disturbed by other processes is run again (fresh clients); the least disturbed attempt is kept.
      let kept: CaseResult | null = null
      for (let attempt = 0; attempt <= settings.retries; attempt++) {
        const result = await runCase(buildDir, mode, servers, redis, urls, tenant.accountToken, subscribers)
        result.attempts = attempt + 1
        if (kept === null || (result.cpu.otherPercent ?? 0) < (kept.cpu.otherPercent ?? 0)) kept = { ...result, attempts: attempt + 1 }
        if ((result.cpu.otherPercent ?? 0) <= NOISE_LIMIT_PERCENT) break
        if (attempt < settings.retries) console.log(`    other processes used ${(result.cpu.otherPercent ?? 0).toFixed(0)} % of the machine: running the case again`)
      }
      results.push(kept as CaseResult)
    }
    return results
  } finally {
    for (const server of servers) if (server.process.connected) server.send({ type: 'stop' })
    for (const server of servers) await server.exit()
  }
}

// ---------------------------------------------------------------- report

function caseLabel (mode: Mode, replicas: number, subscribers: number): string {
  return `${mode}${replicas > 1 ? ` (${replicas} replicas)` : ''} × ${subscribers.toLocaleString('en-US')}`
}

function modeLabel (result: CaseResult): string {
  return result.replicas > 1 ? `${result.mode} (${result.replicas} replicas)` : result.mode
}

function ms (value: number): string {
  if (!Number.isFinite(value)) return '-'
  return value < 10 ? value.toFixed(2) : value.toFixed(1)
}

function verdict (result: CaseResult): { target: string, pass: boolean | null } {
  if (result.subscribers < TARGET_SUBSCRIBERS || result.mode === 'floor') return { target: '-', pass: result.problems.length === 0 ? null : false }
  return { target: `p99 < ${TARGET_P99_MS}`, pass: result.problems.length === 0 && result.pairs.p99 < TARGET_P99_MS }
}

function commandLine (): string {
  const overrides = Object.keys(process.env)
    .filter(name => (name.startsWith('BENCH_FANOUT_') || name === 'BENCH_QUIET_WAIT' || name === 'BENCH_RETRIES' || name === 'BENCH_NO_WRITE' || name === 'BENCH_RESULTS'))
    .sort()
    .map(name => `${name}=${String(process.env[name])}`)
  return [...overrides, 'npm run bench:fanout'].join(' ')
}

function render (results: CaseResult[], startedAt: Date, redisVersion: string | null): string {
  const count = (value: number): string => value.toLocaleString('en-US')
  const percent = (cpuMs: number | null, wallMs: number): string => cpuMs === null || wallMs <= 0 ? '-' : `${(cpuMs / wallMs * 100).toFixed(0)} %`
  const noisy = results.filter(result => result.cpu.otherPercent !== null && result.cpu.otherPercent > NOISE_LIMIT_PERCENT)
  const lines = [
    '## WebSocket fan-out (bench/fanout.ts)',
    '',
    `Date: ${startedAt.toISOString()}`,
    '',
    `Machine: ${machineLine(redisVersion)}.`,
    '',
    `Command: \`${commandLine()}\``,
    '',
    `Setup: one instance, N subscribers on \`GET /ws\` (account token in the \`token\` header, so each gets a snapshot and then every event of the instance). ` +
      'Three processes: the service (bench/fanout-server.ts from a tsc build, as `npm start` runs the service: the real app from buildApp, LOG_LEVEL=' + settings.logLevel + ', RATE_LIMIT_MAX=1e9, other settings default: ' +
      `WS_MAX_BUFFERED_BYTES 1 MiB, ping every 30 s), one process holding every \`ws\` client (bench/fanout-clients.ts, ${settings.concurrency} handshakes in flight while connecting), and the driver. ` +
      'Redis mode: REDIS_URL points at a private redis-server on 127.0.0.1 (store and bus both on Redis; the event goes through PUBLISH/SUBSCRIBE)' +
      (settings.replicas > 1 ? `; ${settings.replicas} service replicas share it, the subscribers spread evenly over them, events recorded on the first, CPU summed over the replicas. ` : '. ') +
      'Floor mode, the reference: the service process replaced by a bare `ws` WebSocketServer (bench/fanout-floor-server.ts: no Fastify, no auth, no store, no bus) that encodes one envelope of the same shape per event and `send()`s it to every client in one loop, with the same clients, clock and pacing; it has no target of its own and shows what the machine (the kernel\'s loopback TCP path and the clients) costs before any service code runs. ' +
      `Per case: ${settings.warmup} unmeasured warm-up events, then ${settings.events} measured ones, one at a time: each starts once every subscriber has the previous one and at least ${settings.intervalMs} ms after it (at least ${settings.gapMs} ms of quiet between them).`,
    '',
    'Latency = subscriber receipt time (first thing in its `message` handler) − the time `app.recordState()` was called in the service, both `performance.timeOrigin + performance.now()` on one machine (the clocks of the two processes agreed within the IPC round trip, checked per case). ' +
      'p50/p99 are over every (subscriber, event) pair; "last subscriber" is, per event, the time until every subscriber had it. It includes the store update, the bus, the fan-out loop, the kernel and the clients\' own processing (all clients share one core).',
    '',
    '| Mode | Subscribers | p50 (ms) | p99 (ms) | Last subscriber p50 (ms) | Last subscriber p99 (ms) | Events | Connect time (s) | Target | Result |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|---|',
    ...results.map(result => {
      const { target, pass } = verdict(result)
      const outcome = pass === null ? '-' : pass ? 'PASS' : 'FAIL'
      return `| ${modeLabel(result)} | ${count(result.subscribers)} | ${ms(result.pairs.p50)} | ${ms(result.pairs.p99)} | ${ms(result.last.p50)} | ${ms(result.last.p99)} | ${result.events} | ${(result.connectMs / 1000).toFixed(1)} | ${target} | ${outcome} |`
    }),
    '',
    `Target: with ${count(TARGET_SUBSCRIBERS)} subscribers, p99 < ${TARGET_P99_MS} ms (every client connected, every event received by every subscriber).`,
    '',
    'Where the time goes (p50 / p99 per event, ms): recorder → `bus.publish()` is the store update; → loop end is when a bus listener registered after the event stream\'s ran, i.e. the stream\'s synchronous loop of `socket.send()`s had finished (Redis: after the PUBLISH round trip and the subscriber\'s parse); loop end → last receipt is the kernel plus the clients\' processing. CPU is each process\'s share of one core during the measured events; service CPU per event is its CPU time over the measured events divided by their number (store update, fan-out, heartbeats and IPC included; unlike the latencies, it is hardly affected by other processes taking the CPU away).',
    '',
    '| Mode | Subscribers | First subscriber | Recorder → publish | Recorder → loop end | Publish → loop end | Loop end → last receipt | Service CPU per event (ms) | per subscriber (µs) | Service CPU | Clients CPU | Redis CPU | Other processes (of machine) | Runs |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...results.map(result => {
      const pair = (value: Spread): string => `${ms(value.p50)} / ${ms(value.p99)}`
      const other = result.cpu.otherPercent === null ? '-' : `${result.cpu.otherPercent.toFixed(0)} %`
      const perEvent = result.cpu.serviceMs === null ? null : result.cpu.serviceMs / result.events
      return `| ${modeLabel(result)} | ${count(result.subscribers)} | ${pair(result.first)} | ${pair(result.toPublish)} | ${pair(result.toLoopEnd)} | ${pair(result.publishToLoopEnd)} | ${pair(result.loopEndToLast)} | ${perEvent === null ? '-' : ms(perEvent)} | ${perEvent === null ? '-' : (perEvent * 1000 / result.subscribers).toFixed(1)} | ${percent(result.cpu.serviceMs, result.cpu.wallMs)} | ${percent(result.cpu.clientsMs, result.cpu.wallMs)} | ${percent(result.cpu.redisMs, result.cpu.wallMs)} | ${other} | ${result.attempts} |`
    }),
    ...results.filter(result => result.problems.length > 0).flatMap(result => ['', `**${caseLabel(result.mode, result.replicas, result.subscribers)}:** ${result.problems.join('; ')}.`]),
    ...(noisy.length > 0 ? ['', `**Warning:** other processes used more than ${NOISE_LIMIT_PERCENT} % of the machine during ${noisy.map(result => caseLabel(result.mode, result.replicas, result.subscribers)).join(', ')}; those latencies are disturbed. Rerun on a quiet machine.`] : [])
  ]
  return lines.join('\n')
}

async function writeResults (section: string): Promise<void> {
  await writeResultsSection(settings.resultsPath, 'fanout', section)
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const startedAt = new Date()
  if (settings.profileDir !== null) await mkdir(settings.profileDir, { recursive: true })
  const limit = openFilesLimit()
  console.log(`fan-out benchmark: modes ${settings.modes.join(', ')}; subscribers ${settings.subscribers.join(', ')}; ${settings.events} events (+${settings.warmup} warm-up); open-files limit ${String(limit)}`)
  const buildDir = await compileProject('bench/fanout-server.js')
  const results: CaseResult[] = []
  let redisVersion: string | null = null
  try {
    for (const mode of settings.modes) {
      const redis = mode === 'redis' ? await startRedis() : null
      if (redis !== null) redisVersion = redis.version
      try {
        results.push(...await runMode(buildDir, mode, redis))
      } finally {
        await redis?.stop()
      }
    }
  } finally {
    await rm(buildDir, { recursive: true, force: true })
  }
  const section = render(results, startedAt, redisVersion)
  console.log(`\n${section}\n`)
  if (!settings.noWrite) {
    await writeResults(section)
    console.log(`written to ${relative(projectRoot, settings.resultsPath)}`)
  }
  const failed = results.filter(result => verdict(result).pass === false)
  if (failed.length > 0) {
    console.log(`FAIL: ${failed.map(result => caseLabel(result.mode, result.replicas, result.subscribers)).join(', ')}`)
    process.exitCode = 1
  }
}

const killChildren = (): void => { for (const child of children) child.kill('SIGKILL') }
process.once('SIGINT', () => { killChildren(); process.exit(130) })
process.once('SIGTERM', () => { killChildren(); process.exit(143) })

try {
  await main()
} catch (error) {
  killChildren()
  console.error(error)
  process.exitCode = 1
}
