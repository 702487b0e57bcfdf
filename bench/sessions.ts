/**
 * Session benchmarks of wa-gateway against the local WhatsApp protocol server
 * (test/support/wa-server), with real, unmodified Baileys sockets in the service.
 *
 *   npm run bench:sessions [-- --only=latency,memory,restart] [--sizes=100,500]
 *                          [--runs=100] [--rounds=3] [--no-write]
 *                          [--cpu-prof] [--heap-snapshot]   (diagnostics)
 *
 * Processes:
 *  - this file without BENCH_SESSIONS_PHASE is the orchestrator: it compiles
 *    the project with tsc to a temp directory, starts the WhatsApp server child
 *    (bench/sessions-wa-server.ts, compiled), runs every phase in a fresh
 *    service worker, prints the tables and writes bench/RESULTS.md;
 *  - the compiled copy of this file with BENCH_SESSIONS_PHASE is a service
 *    worker, run with plain `node --expose-gc`: the whole app
 *    (buildApp, listening on 127.0.0.1, embedded file store in a temp DATA_DIR,
 *    embedded bus) and the HTTP client driving it, nothing else. A fresh
 *    process per phase keeps one phase's garbage and JIT state out of the next
 *    one's numbers, and makes the restart phase a real process restart.
 *
 * Phases:
 *  1. latency: POST /api/instance/reconnect/:name to the `connected`
 *     instance.state event on app.bus, sequentially, for (a) an instance with a
 *     saved session that is not connected in this process (the reconnect after
 *     a restart: session read from disk, new socket, login), and (b) an already
 *     connected instance (reconnect replaces its socket).
 *  2. memory: RSS and heapUsed growth per connected instance at N instances.
 *  3. restart: time from buildApp+listen until all saved sessions that should
 *     be online are connected again, resumed by the service on its own.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { arch, cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import type { FastifyInstance } from 'fastify'
import { compileProject, machineBusyMs as machineBusyMsOrNull, processCpuMs as processCpuMsOrNull, writeResultsSection } from './common.js'
import type { WaServerMessage, WaServerStats } from './sessions-wa-server.js'

const PHASE_ENV = 'BENCH_SESSIONS_PHASE'
const WA_URL_ENV = 'BENCH_SESSIONS_WA_URL'
const ROOT_PRIVATE_ENV = 'BENCH_WA_ROOT_PRIVATE'
const HEAP_SNAPSHOT_ENV = 'BENCH_SESSIONS_HEAP_SNAPSHOT'
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef'
/** A fixed trust root, so every process derives the same key pair from 32 bytes. */
const ROOT_PRIVATE_HEX = createHash('sha256').update('wa-gateway bench/sessions.ts trust root').digest('hex')

const TARGETS = {
  latencyP50Ms: 25,
  rssPerInstanceMiB: 0.5,
  restartMs: 3_000
}

const MiB = 1024 * 1024
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

// ---------------------------------------------------------------------------
// Messages between the orchestrator and a service worker (fork IPC)

type Phase =
  | { kind: 'latency', runs: number, warmup: number }
  | { kind: 'raw', runs: number, warmup: number }
  | { kind: 'memory', n: number, concurrency: number }
  | { kind: 'prepare', n: number, concurrency: number, dataDir: string }
  | { kind: 'resume', n: number, resumeConcurrency: number, dataDir: string }

interface Summary { n: number, min: number, p50: number, p90: number, p99: number, max: number, mean: number }

interface MemorySample {
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
  /** V8's young generation as reserved (semi-spaces): it grows with the allocation rate, not with the instance count. */
  newSpace: number
}

interface LatencyResult {
  kind: 'latency'
  runs: number
  warmup: number
  fresh: { connected: Summary, http: Summary, cpuMsPerRun: number }
  replace: { connected: Summary, http: Summary, cpuMsPerRun: number }
  /** Where the time of a fresh reconnect goes: POST → `connecting` event → Baileys `open` → `connected` event. */
  freshSplit: { toConnecting: Summary, connectingToConnected: Summary, connectingToOpen: Summary, openToConnected: Summary }
  unexpectedEvents: string[]
}

/** Baileys alone, no service: makeWASocket with a saved session in memory → connection `open`. */
interface RawResult { kind: 'raw', runs: number, warmup: number, open: Summary, cpuMsPerRun: number }

interface MemoryResult {
  kind: 'memory'
  n: number
  concurrency: number
  baseline: MemorySample
  afterCreate: MemorySample
  connected: MemorySample
  connectedLater: MemorySample
  connectAllMs: number
  unexpectedEvents: string[]
}

interface PrepareResult { kind: 'prepare', n: number, connectAllMs: number, unexpectedEvents: string[] }

interface ResumeResult {
  kind: 'resume'
  n: number
  resumeConcurrency: number
  /** ms since buildApp started */
  buildAppMs: number
  listenMs: number
  firstConnectedMs: number
  allConnectedMs: number
  /** ms from process start (performance.timeOrigin) to all connected: node startup and module loading included. */
  sinceProcessStartMs: number
  moduleLoadMs: number
  unexpectedEvents: string[]
}

type Result = LatencyResult | RawResult | MemoryResult | PrepareResult | ResumeResult

type WorkerMessage = { type: 'result', result: Result } | { type: 'failed', message: string }
type OrchestratorMessage = { type: 'finish' }

// ---------------------------------------------------------------------------
// Shared helpers

function summarize (values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: rank(0.5),
    p90: rank(0.9),
    p99: rank(0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length)
  }
}

function median (values: number[]): number {
  return summarize(values).p50
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function eachLimited<T> (items: T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      await work(items[index] as T, index)
    }
  })
  await Promise.all(lanes)
}

// ---------------------------------------------------------------------------
// Service worker

interface Service {
  app: FastifyInstance
  url: string
  dataDir: string
}

/** Follows the instance.state events of one app; `connected` resolves waiters registered by name. */
function trackEvents (app: FastifyInstance): {
  nextConnected: (name: string) => Promise<number>
  nextState: (name: string, state: string) => Promise<number>
  connectedNames: Set<string>
  firstConnectedAt: () => number
  /** Events other than connecting/connected (a close, a retry…): must stay empty in a clean run. */
  unexpected: string[]
} {
  const waiters = new Map<string, Array<{ state: string, resolve: (at: number) => void }>>()
  const connectedNames = new Set<string>()
  const unexpected: string[] = []
  let firstConnected = Number.NaN
  app.bus.subscribe(event => {
    const at = performance.now()
    if (event.state === 'connected') {
      connectedNames.add(event.instance)
      if (Number.isNaN(firstConnected)) firstConnected = at
    } else if (event.detail === 'created') {
      // A new instance's first event.
    } else if (event.state !== 'connecting') {
      unexpected.push(`${event.instance}: ${event.previousState ?? '-'} -> ${event.state}/${event.detail}${event.statusCode === null ? '' : ` (${event.statusCode})`}`)
    } else if (event.detail !== 'reconnect_requested' && event.detail !== 'resume') {
      unexpected.push(`${event.instance}: -> connecting/${event.detail}`)
    }
    const list = waiters.get(event.instance)
    if (list === undefined) return
    const remaining = list.filter(waiter => {
      if (waiter.state !== event.state) return true
      waiter.resolve(at)
      return false
    })
    if (remaining.length === 0) waiters.delete(event.instance)
    else waiters.set(event.instance, remaining)
  })
  const nextState = async (name: string, state: string): Promise<number> => await new Promise<number>(resolve => {
    const list = waiters.get(name) ?? []
    list.push({ state, resolve })
    waiters.set(name, list)
  })
  return {
    nextConnected: async name => await nextState(name, 'connected'),
    nextState,
    connectedNames,
    firstConnectedAt: () => firstConnected,
    unexpected
  }
}

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: timed out after ${ms} ms`)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function request (base: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number, body: any }> {
  const headers: Record<string, string> = { token }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  return { status: response.status, body: text === '' ? null : JSON.parse(text) }
}

async function worker (phase: Phase): Promise<void> {
  const moduleStart = performance.now()
  const waUrl = process.env[WA_URL_ENV]
  const rootHex = process.env[ROOT_PRIVATE_ENV]
  if (waUrl === undefined || rootHex === undefined) throw new Error(`${WA_URL_ENV} and ${ROOT_PRIVATE_ENV} must be set`)
  const [{ buildApp }, { loadConfig }, { seedSavedSession }, wa] = await Promise.all([
    import('../app.js'),
    import('../config/index.js'),
    import('../test/support/sessions.js'),
    import('../test/support/wa-server/index.js')
  ])
  const moduleLoadMs = performance.now() - moduleStart
  // As in production (`node dist/server.js`): no source-mapped stack traces. Baileys reads `new Error().stack`
  // for every query it sends, which source mapping would make several times dearer.
  process.setSourceMapsEnabled(false)
  wa.installTestTrustRoot(wa.keyPairFromPrivate(Buffer.from(rootHex, 'hex')).public)

  const gc = globalThis.gc
  const collect = async (): Promise<void> => {
    if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench:sessions does)')
    for (let i = 0; i < 3; i++) {
      gc()
      await sleep(50)
    }
  }
  /** Full GCs, a pause for V8 and the allocator to hand freed pages back, GCs again, then the sample. */
  const sample = async (): Promise<MemorySample> => {
    await collect()
    await sleep(1_000)
    await collect()
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage()
    const newSpace = getHeapSpaceStatistics().find(space => space.space_name === 'new_space')?.space_size ?? 0
    return { rss, heapUsed, heapTotal, external, arrayBuffers, newSpace }
  }
  /** Samples every 2 s until RSS moves less than 2 MiB between two samples (at most 8 samples); the last one. */
  const stableSample = async (): Promise<MemorySample> => {
    let previous = await sample()
    for (let i = 0; i < 7; i++) {
      await sleep(2_000)
      const next = await sample()
      const settled = Math.abs(next.rss - previous.rss) < 2 * MiB
      previous = next
      if (settled) break
    }
    return previous
  }

  /** Waits until this process has been nearly idle (< 5 % of one core) for 500 ms, at most `maxMs`. */
  const quiet = async (maxMs: number): Promise<void> => {
    const until = performance.now() + maxMs
    while (performance.now() < until) {
      const before = process.cpuUsage()
      await sleep(500)
      const used = process.cpuUsage(before)
      if ((used.user + used.system) / 1000 < 25) return
    }
  }

  let logLineCount = 0
  const logStream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      logLineCount++
      // Warnings and errors of the service are shown, a few of them.
      if (logLineCount <= 10) process.stderr.write(`[service log] ${chunk.toString()}`)
      done()
    }
  })

  function configFor (dataDir: string, extra: Record<string, string> = {}): ReturnType<typeof loadConfig> {
    return loadConfig({
      LOG_LEVEL: 'warn',
      WA_LOG_LEVEL: 'silent',
      ADMIN_TOKEN,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: '0',
      WA_WS_URL: waUrl,
      RATE_LIMIT_MAX: '1000000000',
      RATE_LIMIT_CREATE_MAX: '1000000000',
      ACCOUNT_INSTANCE_QUOTA: '1000000',
      ...extra
    })
  }

  async function startService (dataDir?: string, extra: Record<string, string> = {}): Promise<Service> {
    const dir = dataDir ?? await mkdtemp(join(tmpdir(), 'wa-bench-sessions-'))
    const app = await buildApp({ config: configFor(dir, extra), logStream })
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    return { app, url, dataDir: dir }
  }

  async function createAccount (service: Service): Promise<{ accountId: string, token: string }> {
    const reply = await request(service.url, 'POST', '/api/account', ADMIN_TOKEN, { name: 'bench' })
    if (reply.status !== 201) throw new Error(`account creation: ${reply.status} ${JSON.stringify(reply.body)}`)
    return { accountId: reply.body.account.id, token: reply.body.account.token }
  }

  /** Creates the instances over HTTP and seeds each with the saved session of a distinct paired device. */
  async function createSeeded (service: Service, account: { accountId: string, token: string }, names: string[], jidBase: number): Promise<void> {
    await eachLimited(names, 16, async (name, index) => {
      const reply = await request(service.url, 'POST', '/api/instance/new', account.token, { name })
      if (reply.status !== 201) throw new Error(`instance creation ${name}: ${reply.status} ${JSON.stringify(reply.body)}`)
      await seedSavedSession(service.app, account.accountId, name, `55${String(jidBase + index).padStart(11, '0')}:1@s.whatsapp.net`)
    })
  }

  async function reconnect (service: Service, token: string, name: string): Promise<void> {
    const reply = await request(service.url, 'POST', `/api/instance/reconnect/${name}`, token)
    if (reply.status !== 200) throw new Error(`reconnect ${name}: ${reply.status} ${JSON.stringify(reply.body)}`)
  }

  /** Reconnects every instance over HTTP, `concurrency` requests at a time, and waits until all are connected. */
  async function connectAll (service: Service, events: ReturnType<typeof trackEvents>, token: string, names: string[], concurrency: number): Promise<number> {
    const started = performance.now()
    const connected = names.map(name => events.nextConnected(name))
    await eachLimited(names, concurrency, async name => { await reconnect(service, token, name) })
    await withTimeout(Promise.all(connected), 120_000, `connecting ${names.length} instances`)
    return performance.now() - started
  }

  const names = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`)

  let result: Result
  let service: Service | undefined

  switch (phase.kind) {
    case 'latency': {
      service = await startService()
      const events = trackEvents(service.app)
      const account = await createAccount(service)
      const warm = names('warm', phase.warmup)
      const fresh = names('fresh', phase.runs)
      await createSeeded(service, account, ['same', ...warm, ...fresh], 10_000)

      // A timing probe, nothing more: the service starts recording the `connected` state in the same turn as
      // Baileys emits connection `open`, and publishes the event once the store has it; so the start of that
      // store call marks `open`.
      const { store } = service.app
      const updateInstance = store.updateInstance.bind(store)
      const openAt = new Map<string, number>()
      store.updateInstance = async (...args: Parameters<typeof updateInstance>) => {
        if (args[1].connection?.state === 'connected') openAt.set(args[0], performance.now())
        return await updateInstance(...args)
      }
      const once = async (name: string): Promise<{ connected: number, http: number, toConnecting: number, toOpen: number }> => {
        const id = (await store.findInstanceByName(account.accountId, name))?.id ?? ''
        const connected = events.nextConnected(name)
        const connecting = events.nextState(name, 'connecting')
        const started = performance.now()
        await reconnect(service as Service, account.token, name)
        const http = performance.now() - started
        const at = await withTimeout(connected, 10_000, `reconnect of ${name}`)
        const connectingAt = await connecting
        return { connected: at - started, http, toConnecting: connectingAt - started, toOpen: (openAt.get(id) ?? Number.NaN) - started }
      }

      // Warm-up, not measured: JIT, the HTTP client's keep-alive connection, first socket of the process.
      for (const name of warm) await once(name)
      await once('same')
      for (let i = 0; i < phase.warmup; i++) await once('same')

      // CPU time of this (the service's) process per run: less sensitive than wall time to other load on the machine.
      const cpuMs = (since: NodeJS.CpuUsage): number => { const used = process.cpuUsage(since); return (used.user + used.system) / 1000 }
      const freshRuns: Array<{ connected: number, http: number, toConnecting: number, toOpen: number }> = []
      let cpu = process.cpuUsage()
      for (const name of fresh) freshRuns.push(await once(name))
      const freshCpu = cpuMs(cpu) / phase.runs
      await sleep(200)
      const replaceRuns: Array<{ connected: number, http: number }> = []
      cpu = process.cpuUsage()
      for (let i = 0; i < phase.runs; i++) replaceRuns.push(await once('same'))
      const replaceCpu = cpuMs(cpu) / phase.runs

      result = {
        kind: 'latency',
        runs: phase.runs,
        warmup: phase.warmup,
        fresh: { connected: summarize(freshRuns.map(r => r.connected)), http: summarize(freshRuns.map(r => r.http)), cpuMsPerRun: freshCpu },
        replace: { connected: summarize(replaceRuns.map(r => r.connected)), http: summarize(replaceRuns.map(r => r.http)), cpuMsPerRun: replaceCpu },
        freshSplit: {
          toConnecting: summarize(freshRuns.map(r => r.toConnecting)),
          connectingToConnected: summarize(freshRuns.map(r => r.connected - r.toConnecting)),
          connectingToOpen: summarize(freshRuns.map(r => r.toOpen - r.toConnecting)),
          openToConnected: summarize(freshRuns.map(r => r.connected - r.toOpen))
        },
        unexpectedEvents: events.unexpected.filter(line => !line.includes('connected -> connecting')).slice(0, 20)
      }
      break
    }

    case 'raw': {
      const { default: makeWASocket } = await import('@whiskeysockets/baileys')
      const { default: pino } = await import('pino')
      const logger = pino({ level: 'silent' })
      const once = async (index: number): Promise<number> => {
        const started = performance.now()
        const socket = makeWASocket({
          auth: wa.memoryAuthState(wa.savedSessionCreds(`55${String(50_000 + index).padStart(11, '0')}:1@s.whatsapp.net`)),
          waWebSocketUrl: waUrl,
          logger,
          markOnlineOnConnect: false,
          syncFullHistory: false,
          shouldSyncHistoryMessage: () => false,
          generateHighQualityLinkPreview: false
        })
        const opened = await withTimeout(new Promise<number>((resolve, reject) => {
          socket.ev.on('connection.update', update => {
            if (update.connection === 'open') resolve(performance.now())
            if (update.connection === 'close') reject(update.lastDisconnect?.error ?? new Error('closed'))
          })
        }), 10_000, 'raw Baileys login')
        await socket.end(undefined)
        return opened - started
      }
      for (let i = 0; i < phase.warmup; i++) await once(i)
      const cpu = process.cpuUsage()
      const runs: number[] = []
      for (let i = 0; i < phase.runs; i++) runs.push(await once(phase.warmup + i))
      const used = process.cpuUsage(cpu)
      result = { kind: 'raw', runs: phase.runs, warmup: phase.warmup, open: summarize(runs), cpuMsPerRun: (used.user + used.system) / 1000 / phase.runs }
      break
    }

    case 'memory': {
      service = await startService()
      const events = trackEvents(service.app)
      const account = await createAccount(service)
      await createSeeded(service, account, ['warm'], 20_000)
      await connectAll(service, events, account.token, ['warm'], 1)
      await sleep(1_000)
      await quiet(10_000)
      const baseline = await stableSample()

      const fleet = names('mem', phase.n)
      await createSeeded(service, account, fleet, 30_000)
      await sleep(500)
      await quiet(10_000)
      const afterCreate = await stableSample()

      const connectAllMs = await connectAll(service, events, account.token, fleet, phase.concurrency)
      // Baileys keeps working for a moment after `open` (LID mapping, session writes): let it settle.
      await sleep(1_000)
      await quiet(30_000)
      const connected = await sample()
      const connectedLater = await stableSample()
      if (process.env[HEAP_SNAPSHOT_ENV] === '1') {
        // Diagnostic (`--heap-snapshot`): where the heap of N connected instances is, for chrome://inspect or a script.
        const file = join(tmpdir(), 'wa-bench-sessions-profiles', `memory-${phase.n}-${process.pid}.heapsnapshot`)
        await mkdir(dirname(file), { recursive: true })
        writeHeapSnapshot(file)
        process.stderr.write(`heap snapshot: ${file}\n`)
      }
      result = { kind: 'memory', n: phase.n, concurrency: phase.concurrency, baseline, afterCreate, connected, connectedLater, connectAllMs, unexpectedEvents: events.unexpected.slice(0, 20) }
      break
    }

    case 'prepare': {
      service = await startService(phase.dataDir)
      const events = trackEvents(service.app)
      const account = await createAccount(service)
      const fleet = names('resume', phase.n)
      await createSeeded(service, account, fleet, 40_000)
      const connectAllMs = await connectAll(service, events, account.token, fleet, phase.concurrency)
      await sleep(1_000)
      result = { kind: 'prepare', n: phase.n, connectAllMs, unexpectedEvents: events.unexpected.slice(0, 20) }
      break
    }

    case 'resume': {
      const started = performance.now()
      const app = await buildApp({ config: configFor(phase.dataDir, { RESUME_CONCURRENCY: String(phase.resumeConcurrency) }), logStream })
      // resumeAll starts in onReady, which listen() runs: subscribing here misses nothing.
      const events = trackEvents(app)
      const built = performance.now()
      const all = new Promise<number>(resolve => {
        const check = (): void => {
          if (events.connectedNames.size >= phase.n) resolve(performance.now())
          else setImmediate(check)
        }
        check()
      })
      const url = await app.listen({ port: 0, host: '127.0.0.1' })
      const listening = performance.now()
      service = { app, url, dataDir: phase.dataDir }
      const allAt = await withTimeout(all, 60_000, `resuming ${phase.n} instances`)
      result = {
        kind: 'resume',
        n: phase.n,
        resumeConcurrency: phase.resumeConcurrency,
        buildAppMs: built - started,
        listenMs: listening - started,
        firstConnectedMs: events.firstConnectedAt() - started,
        allConnectedMs: allAt - started,
        sinceProcessStartMs: allAt,
        moduleLoadMs,
        unexpectedEvents: events.unexpected.slice(0, 20)
      }
      break
    }
  }

  const finish = new Promise<void>(resolve => {
    process.on('message', (message: unknown) => { if ((message as OrchestratorMessage | null)?.type === 'finish') resolve() })
  })
  sendToParent({ type: 'result', result })
  await withTimeout(finish, 60_000, 'waiting for the orchestrator').catch(() => {})
  // Closing the app is the "stop" of a restart: sockets end without logout, desired stays online.
  if (service !== undefined) {
    await service.app.close()
    if (phase.kind !== 'prepare' && phase.kind !== 'resume') await rm(service.dataDir, { recursive: true, force: true })
  }
}

function sendToParent (message: WorkerMessage): void {
  if (process.send === undefined) throw new Error('a service worker must be forked by the orchestrator')
  process.send(message)
}

// ---------------------------------------------------------------------------
// Orchestrator

interface Options {
  only: Set<string>
  sizes: number[]
  runs: number
  rounds: number
  write: boolean
  cpuProf: boolean
  heapSnapshot: boolean
}

function parseOptions (argv: string[]): Options {
  const value = (name: string): string | undefined => argv.find(arg => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
  const list = (name: string, fallback: string): string[] => (value(name) ?? fallback).split(',').map(s => s.trim()).filter(s => s !== '')
  return {
    only: new Set(list('only', 'latency,memory,restart')),
    sizes: list('sizes', '100,500').map(Number),
    runs: Number(value('runs') ?? 100),
    rounds: Number(value('rounds') ?? 3),
    write: !argv.includes('--no-write'),
    cpuProf: argv.includes('--cpu-prof'),
    heapSnapshot: argv.includes('--heap-snapshot')
  }
}

const resultsPath = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
const childEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
  ...process.env,
  [ROOT_PRIVATE_ENV]: ROOT_PRIVATE_HEX,
  ...extra
})

async function startWaServer (buildDir: string): Promise<{ child: ChildProcess, url: string, stats: () => Promise<WaServerStats> }> {
  const child = fork(join(buildDir, 'bench', 'sessions-wa-server.js'), [], {
    execArgv: [],
    env: childEnv({}),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const url = await withTimeout(new Promise<string>((resolve, reject) => {
    child.on('message', (message: WaServerMessage) => {
      if (message.type === 'ready') resolve(message.url)
      if (message.type === 'failed') reject(new Error(message.message))
    })
    child.once('exit', code => { reject(new Error(`the WhatsApp server exited with ${String(code)}`)) })
  }), 60_000, 'starting the WhatsApp server')
  const stats = async (): Promise<WaServerStats> => await withTimeout(new Promise<WaServerStats>(resolve => {
    const onMessage = (message: WaServerMessage): void => {
      if (message.type !== 'stats') return
      child.off('message', onMessage)
      resolve(message)
    }
    child.on('message', onMessage)
    child.send({ type: 'stats' })
  }), 10_000, 'WhatsApp server stats')
  return { child, url, stats }
}

/** The CPU counters of bench/common.ts, 0 where there is no /proc, so the noise arithmetic below stays plain. */
const processCpuMs = (pid: number | undefined): number => processCpuMsOrNull(pid) ?? 0
const machineBusyMs = (): number => machineBusyMsOrNull() ?? 0

interface Noise { phase: string, seconds: number, otherPercent: number, waitedSeconds: number }

/**
 * Before a timing-sensitive worker: waits (at most `maxMs`) for a second in which processes other than
 * this benchmark's used less than 25 % of the machine. Returns the seconds waited.
 */
async function waitForQuietMachine (waPid: number | undefined, maxMs: number): Promise<number> {
  const started = performance.now()
  while (performance.now() - started < maxMs) {
    const busy = machineBusyMs()
    const wa = processCpuMs(waPid)
    const self = process.cpuUsage()
    await sleep(1_000)
    const selfUsed = process.cpuUsage(self)
    const other = machineBusyMs() - busy - (processCpuMs(waPid) - wa) - (selfUsed.user + selfUsed.system) / 1000
    if (other / (1_000 * cpus().length) < 0.25) break
  }
  return (performance.now() - started) / 1000
}

async function runWorker<R extends Result> (phase: Phase, wa: { child: ChildProcess, url: string, stats: () => Promise<WaServerStats> }, options: Options, buildDir: string, noise: Noise[]): Promise<{ result: R, server: WaServerStats }> {
  const waitedSeconds = phase.kind === 'memory' || phase.kind === 'prepare' ? 0 : await waitForQuietMachine(wa.child.pid, 10_000)
  const execArgv = ['--expose-gc']
  if (options.cpuProf) execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(tmpdir(), 'wa-bench-sessions-profiles')}`)
  const busyBefore = machineBusyMs()
  const waBefore = processCpuMs(wa.child.pid)
  const selfBefore = process.cpuUsage()
  const startedAt = performance.now()
  const child = fork(join(buildDir, 'bench', 'sessions.js'), process.argv.slice(2), {
    execArgv,
    env: childEnv({ [PHASE_ENV]: JSON.stringify(phase), [WA_URL_ENV]: wa.url, ...(options.heapSnapshot ? { [HEAP_SNAPSHOT_ENV]: '1' } : {}) }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const exited = new Promise<number | null>(resolve => { child.once('exit', code => { resolve(code) }) })
  try {
    const result = await withTimeout(new Promise<R>((resolve, reject) => {
      child.on('message', (message: WorkerMessage) => {
        if (message.type === 'result') resolve(message.result as R)
        else reject(new Error(message.message))
      })
      void exited.then(code => { reject(new Error(`the ${phase.kind} worker exited with ${String(code)} before reporting`)) })
    }), 240_000, `the ${phase.kind} worker`)
    // How much of the machine other processes (not this benchmark's three) used while the worker ran.
    const seconds = (performance.now() - startedAt) / 1000
    const selfUsed = process.cpuUsage(selfBefore)
    const ours = processCpuMs(child.pid) + (processCpuMs(wa.child.pid) - waBefore) + (selfUsed.user + selfUsed.system) / 1000
    const other = machineBusyMs() - busyBefore - ours
    const label = phase.kind === 'resume' ? `resume (RESUME_CONCURRENCY=${phase.resumeConcurrency})` : phase.kind === 'memory' ? `memory ${phase.n}` : phase.kind
    noise.push({ phase: label, seconds, otherPercent: Math.max(0, other / (seconds * 1000 * cpus().length) * 100), waitedSeconds })
    // Counted while the worker's sockets are still open.
    const server = await wa.stats()
    child.send({ type: 'finish' } satisfies OrchestratorMessage)
    const code = await withTimeout(exited, 30_000, `the ${phase.kind} worker's exit`)
    if (code !== 0) throw new Error(`the ${phase.kind} worker exited with ${String(code)}`)
    return { result, server }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}

const ms = (value: number): string => value.toFixed(1)
const mib = (bytes: number): string => (bytes / MiB).toFixed(1)
const verdict = (ok: boolean): string => ok ? 'PASS' : 'FAIL'
const signed = (value: number): string => `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(1)}`

function table (header: string[], rows: string[][], align: Array<'l' | 'r'>): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  return [line(header), line(align.map(a => a === 'r' ? '--:' : '---')), ...rows.map(line)].join('\n')
}

async function orchestrate (): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const loadBefore = loadavg()
  console.error('compiling …')
  const buildDir = await compileProject('bench/sessions.js')
  const wa = await startWaServer(buildDir)
  const noise: Noise[] = []
  const sections: string[] = []
  const verdicts: string[] = []
  const notes: string[] = []
  const tempDirs: string[] = [buildDir]
  let serverOpenBefore = 0

  const checkClean = (what: string, unexpected: string[], server: WaServerStats, expectedOpen?: number): void => {
    if (unexpected.length > 0) notes.push(`${what}: unexpected state events: ${unexpected.slice(0, 5).join('; ')}`)
    if (server.protocolErrors.length > 0) notes.push(`${what}: WhatsApp server protocol errors: ${server.protocolErrors.slice(0, 3).join('; ')}`)
    if (expectedOpen !== undefined && server.openConnections - serverOpenBefore !== expectedOpen) {
      notes.push(`${what}: the WhatsApp server had ${server.openConnections - serverOpenBefore} open connections from the worker, expected ${expectedOpen}`)
    }
  }

  try {
    serverOpenBefore = (await wa.stats()).openConnections

    if (options.only.has('latency')) {
      console.error(`latency: ${options.runs} runs per case …`)
      const { result, server } = await runWorker<LatencyResult>({ kind: 'latency', runs: options.runs, warmup: 10 }, wa, options, buildDir, noise)
      checkClean('latency', result.unexpectedEvents, server)
      const raw = await runWorker<RawResult>({ kind: 'raw', runs: options.runs, warmup: 10 }, wa, options, buildDir, noise)
      checkClean('latency (Baileys alone)', [], raw.server)
      const row = (label: string, s: Summary, cpuMs?: number): string[] => [
        label, String(s.n), ms(s.min), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max), ms(s.mean), cpuMs === undefined ? '' : ms(cpuMs),
        cpuMs !== undefined ? `p50 ≤ ${TARGETS.latencyP50Ms}` : '-', cpuMs !== undefined ? verdict(s.p50 <= TARGETS.latencyP50Ms) : '-'
      ]
      const rows = [
        row('a. saved session, not connected: POST → `connected` event', result.fresh.connected, result.fresh.cpuMsPerRun),
        row('a. same: POST → HTTP 200', result.fresh.http),
        row('a. same: POST → `connecting` event', result.freshSplit.toConnecting),
        row('a. same: `connecting` event → Baileys `open`', result.freshSplit.connectingToOpen),
        row('a. same: Baileys `open` → `connected` event (the state is written to the store first)', result.freshSplit.openToConnected),
        row('b. connected instance (socket replaced): POST → `connected` event', result.replace.connected, result.replace.cpuMsPerRun),
        row('b. same: POST → HTTP 200', result.replace.http),
        [...row('c. reference, Baileys alone (no service, own process): makeWASocket → `open`', raw.result.open).slice(0, 8), ms(raw.result.cpuMsPerRun), '-', '-']
      ]
      verdicts.push(`Reconnect → connected p50, saved session not connected: ${ms(result.fresh.connected.p50)} ms (target ≤ ${TARGETS.latencyP50Ms} ms): ${verdict(result.fresh.connected.p50 <= TARGETS.latencyP50Ms)}`)
      verdicts.push(`Reconnect → connected p50, connected instance (socket replaced): ${ms(result.replace.connected.p50)} ms (target ≤ ${TARGETS.latencyP50Ms} ms): ${verdict(result.replace.connected.p50 <= TARGETS.latencyP50Ms)}`)
      sections.push([
        '### 1. Reconnect latency',
        '',
        `Sequential runs, one at a time, through HTTP on the listening service (global fetch, keep-alive) in the same process; the clock stops in the app.bus listener of the \`connected\` instance.state event. ${result.warmup} unmeasured warm-up reconnects of each kind first. ` +
        `(a) ${result.runs} distinct instances, each with a saved session on disk and not connected in this process (the reconnect after a restart: session read, new Baileys socket, noise handshake, login). ` +
        `(b) ${result.runs} reconnects of one connected instance: the service ends its socket and opens a new one. ` +
        `(c) for reference, in another fresh process: ${raw.result.runs} sequential raw Baileys sockets (saved session in memory, same socket options as the service, distinct jids), from makeWASocket to connection \`open\`, each ended afterwards. ` +
        '"service CPU ms/run" is the CPU time (user+system) of the service process over the measured runs divided by their number.',
        '',
        table(['Case', 'runs', 'min ms', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'mean ms', 'service CPU ms/run', 'Target', 'Result'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l']),
        '',
        `The service over Baileys alone (a − c): p50 ${signed(result.fresh.connected.p50 - raw.result.open.p50)} ms, CPU ${signed(result.fresh.cpuMsPerRun - raw.result.cpuMsPerRun)} ms per reconnect.`
      ].join('\n'))
      console.error(sections[sections.length - 1] + '\n')
    }

    if (options.only.has('memory')) {
      const rows: string[][] = []
      for (const n of options.sizes) {
        console.error(`memory: ${n} instances …`)
        const { result, server } = await runWorker<MemoryResult>({ kind: 'memory', n, concurrency: 16 }, wa, options, buildDir, noise)
        checkClean(`memory ${n}`, result.unexpectedEvents, server, n + 1)
        const { baseline: b, afterCreate: c, connectedLater: m } = result
        const rssPer = (m.rss - b.rss) / n
        const heapPer = (m.heapUsed - b.heapUsed) / n
        rows.push([
          String(n), String(server.openConnections - serverOpenBefore), (result.connectAllMs / 1000).toFixed(2),
          `${mib(b.rss)} → ${mib(m.rss)}`, `${mib(b.heapUsed)} → ${mib(m.heapUsed)}`, `${mib(b.heapTotal)} → ${mib(m.heapTotal)}`, `${mib(b.newSpace)} → ${mib(m.newSpace)}`,
          ((c.rss - b.rss) / n / MiB).toFixed(3), ((c.heapUsed - b.heapUsed) / n / MiB).toFixed(3),
          (rssPer / MiB).toFixed(3), (heapPer / MiB).toFixed(3), ((m.external - b.external) / n / MiB).toFixed(3),
          `≤ ${TARGETS.rssPerInstanceMiB}`, verdict(rssPer / MiB <= TARGETS.rssPerInstanceMiB)
        ])
        verdicts.push(`RSS per connected instance at ${n}: ${(rssPer / MiB).toFixed(3)} MiB (target ≤ ${TARGETS.rssPerInstanceMiB} MiB): ${verdict(rssPer / MiB <= TARGETS.rssPerInstanceMiB)}`)
        const drift = (m.rss - result.connected.rss) / MiB
        if (Math.abs(drift) > 5) notes.push(`memory ${n}: RSS moved ${drift.toFixed(1)} MiB from the first sample after all connected to the settled one that is reported`)
      }
      sections.push([
        '### 2. Memory per connected instance',
        '',
        'A fresh service process per size. Baseline: app listening with 1 warm-up instance connected, after GC. Then N instances are created over HTTP and seeded with the saved session of a distinct paired device (jid), ' +
        'reconnected over HTTP 16 at a time; once the process is idle again (< 5 % of a core for 0.5 s) it is sampled every 2 s until RSS moves less than 2 MiB between two samples (at most 8), and the last sample is used; the baseline is taken the same way. Every sample is taken after `gc()` ×3, 1 s of rest, `gc()` ×3. "Per instance" is (sample − baseline) / N, so it includes the instance record and its cached session as well as the socket; the "records+sessions only" columns are the same delta taken before any of the N connected. ' +
        '"open" is the WhatsApp server\'s count of open connections from the service at the sample (N + the warm-up one). ' +
        '"V8 new space" is the young generation V8 keeps reserved; it grows with the allocation rate while the instances connect and is part of the RSS delta without depending on N.',
        '',
        table(
          ['N', 'open', 'connect all s', 'RSS MiB (base → N)', 'heapUsed MiB (base → N)', 'heapTotal MiB (base → N)', 'V8 new space MiB (base → N)', 'records+sessions only: RSS/inst MiB', 'records+sessions only: heap/inst MiB', 'RSS/inst MiB', 'heapUsed/inst MiB', 'external/inst MiB', 'Target (RSS)', 'Result'],
          rows,
          ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l']
        )
      ].join('\n'))
      console.error(sections[sections.length - 1] + '\n')
    }

    if (options.only.has('restart')) {
      const n = 50
      const dataDir = await mkdtemp(join(tmpdir(), 'wa-bench-sessions-restart-'))
      tempDirs.push(dataDir)
      console.error(`restart: connecting ${n} instances, then ${options.rounds} restarts per RESUME_CONCURRENCY …`)
      const prepared = await runWorker<PrepareResult>({ kind: 'prepare', n, concurrency: 10, dataDir }, wa, options, buildDir, noise)
      checkClean('restart (prepare)', prepared.result.unexpectedEvents, prepared.server, n)
      const byConcurrency = new Map<number, ResumeResult[]>()
      for (let round = 0; round < options.rounds; round++) {
        for (const resumeConcurrency of [10, 50]) {
          const { result, server } = await runWorker<ResumeResult>({ kind: 'resume', n, resumeConcurrency, dataDir }, wa, options, buildDir, noise)
          checkClean(`restart (RESUME_CONCURRENCY=${resumeConcurrency}, round ${round + 1})`, result.unexpectedEvents, server, n)
          const results = byConcurrency.get(resumeConcurrency) ?? []
          results.push(result)
          byConcurrency.set(resumeConcurrency, results)
        }
      }
      const rows = [...byConcurrency.entries()].map(([concurrency, results]) => {
        const all = results.map(r => r.allConnectedMs)
        const worst = Math.max(...all)
        verdicts.push(`Restart, ${n} saved sessions, RESUME_CONCURRENCY=${concurrency}: all connected after ${ms(median(all))} ms median, ${ms(worst)} ms worst (target < ${TARGETS.restartMs} ms): ${verdict(worst < TARGETS.restartMs)}`)
        return [
          String(concurrency) + (concurrency === 10 ? ' (default)' : ''), String(results.length),
          ms(median(results.map(r => r.buildAppMs))), ms(median(results.map(r => r.listenMs))), ms(median(results.map(r => r.firstConnectedMs))),
          ms(median(all)), all.map(ms).join(', '),
          ms(median(results.map(r => r.moduleLoadMs))), ms(median(results.map(r => r.sinceProcessStartMs))),
          `< ${TARGETS.restartMs}`, verdict(worst < TARGETS.restartMs)
        ]
      })
      sections.push([
        '### 3. Restart: all saved sessions connected again',
        '',
        `A service process connected ${n} instances (saved sessions, desired online; that took ${ms(prepared.result.connectAllMs)} ms over HTTP, 10 at a time) and closed its app. ` +
        `Then, ${options.rounds} times per RESUME_CONCURRENCY, alternating, a new service process on the same DATA_DIR: the clock starts before \`buildApp\` and stops when all ${n} \`connected\` events have been published; the service resumes them by itself (nothing is called). ` +
        'Loading the compiled modules happens before the clock starts; it is shown separately, with the time from the process\'s start (node startup included), for information.',
        '',
        table(
          ['RESUME_CONCURRENCY', 'rounds', 'buildApp ms', 'listening ms', 'first connected ms', 'all connected ms (median)', 'all connected ms (each)', 'module load ms', 'from process start ms', 'Target (each)', 'Result'],
          rows,
          ['l', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'l', 'l']
        )
      ].join('\n'))
      console.error(sections[sections.length - 1] + '\n')
    }
  } finally {
    wa.child.send({ type: 'stop' })
    await withTimeout(new Promise(resolve => { wa.child.once('exit', resolve) }), 5_000, 'stopping the WhatsApp server').catch(() => { wa.child.kill('SIGKILL') })
    for (const dir of tempDirs) await rm(dir, { recursive: true, force: true })
  }

  const loadAfter = loadavg()
  const cpuList = cpus()
  const machine = `${cpuList[0]?.model.trim() ?? 'unknown CPU'}, ${cpuList.length} cores, ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, Node ${process.version}, Linux ${release()} (${arch()})`
  const args = process.argv.slice(2)
  const command = `npm run bench:sessions${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`
  const section = [
    '## Sessions (bench/sessions.ts)',
    '',
    `Date: ${startedAt.toISOString()}`,
    '',
    `Machine: ${machine}.`,
    '',
    `Command: \`${command}\` (= \`node --expose-gc --import @tapjs/typescript/import bench/sessions.ts\`)`,
    '',
    `Load average (1/5/15 min) at the start: ${loadBefore.map(l => l.toFixed(2)).join(' / ')}; at the end: ${loadAfter.map(l => l.toFixed(2)).join(' / ')} (${cpuList.length} cores; anything above ~0.5 is other work sharing the machine and makes the wall-clock numbers noisier; CPU-time columns are less affected).`,
    '',
    'Setup: the local WhatsApp protocol server (test/support/wa-server, bench/sessions-wa-server.ts) runs in its own child process on 127.0.0.1, its certificate chain rooted at a fixed key the service trusts (installTestTrustRoot). ' +
    'Each phase runs the whole service (buildApp, listening on 127.0.0.1, real Baileys sockets) in a fresh worker process: embedded file store in a temp DATA_DIR, embedded bus, LOG_LEVEL=warn, WA_LOG_LEVEL=silent, RATE_LIMIT_MAX=1000000000, other settings default (WA_KEEPALIVE_MS 30000). ' +
    'The orchestrator first compiles the project with tsc (tsconfig.json) to plain JavaScript in a temp directory; both children run that with plain `node` (workers with `--expose-gc`), as production runs `node dist/server.js`. Both processes share the machine\'s cores.',
    '',
    ...sections.flatMap(s => [s, '']),
    '### Targets',
    '',
    ...verdicts.map(v => `- ${v}`),
    '',
    '### Other load on the machine',
    '',
    'CPU used by processes other than this benchmark\'s own three while each worker ran, in % of all cores (from /proc): the wall-clock numbers of a phase are only as clean as this. ' +
    'Before each timing worker (not before the memory ones) the orchestrator waited up to 10 s for a second with less than 25 % other load.',
    '',
    table(['Worker', 'waited s', 'ran s', 'other load %'], noise.map(n => [n.phase, n.waitedSeconds.toFixed(0), n.seconds.toFixed(1), n.otherPercent.toFixed(0)]), ['l', 'r', 'r', 'r']),
    ...(notes.length > 0 ? ['', '### Notes', '', ...notes.map(n => `- ${n}`)] : [])
  ].join('\n')

  console.log('\n' + section + '\n')
  if (options.write) {
    await writeResultsSection(resultsPath, 'sessions', section)
    console.error(`written to ${resultsPath}`)
  }
}

// ---------------------------------------------------------------------------

const phaseJson = process.env[PHASE_ENV]
try {
  if (phaseJson !== undefined) await worker(JSON.parse(phaseJson) as Phase)
  else await orchestrate()
  process.exit(0)
} catch (error) {
  const message = error instanceof Error ? error.stack ?? error.message : String(error)
  if (phaseJson !== undefined && process.send !== undefined) sendToParent({ type: 'failed', message })
  console.error(message)
  process.exit(1)
}
