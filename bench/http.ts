/**
 * HTTP throughput benchmark: `npm run bench:http`.
 *
 * In one run it measures, with autocannon, a bare Fastify route (the baseline)
 * and two authenticated, rate-limited routes of the app, on the embedded file
 * store and on Redis (a private redis-server this script starts and stops):
 *
 * - `GET /api/instance/list?instanceName=<name>`: a 200 with the instance view;
 * - `POST /api/instance/reconnect/<name>` for an instance with no saved session:
 *   the documented 400 ("Instance has no saved session, call /connect first").
 *
 * Every app case is measured right after a fresh window on the bare route and
 * judged against that window: on a shared VM the machine's speed drifts by a
 * third within minutes, and one baseline at the start would mostly measure that.
 * Each case takes several such (bare, case) rounds and is judged on the round
 * with the median ratio, so one disturbed window can neither pass nor fail it.
 * Every round starts a fresh bare server and a fresh app: now and then a
 * process settles for its whole life in a slower state (a bare server seen
 * here went from 17 to 26 µs of CPU per request after a few windows, and
 * stayed there), so processes kept across rounds would make the rounds one
 * draw instead of several.
 *
 * Each server runs in its own child process (bench/server.ts, from a tsc
 * build, as `npm start` runs the service) so the load generator, which runs
 * here, never competes with it for an event loop.
 * Results go to the console and to bench/RESULTS.md, between the markers of the
 * "HTTP (bench/http.ts)" section; any other section of that file is kept.
 *
 * Environment (all optional):
 *   BENCH_DURATION     seconds measured per window (10)
 *   BENCH_WARMUP       seconds of unmeasured load before each window (2)
 *   BENCH_ROUNDS       (bare, case) rounds per app case; the median round decides (3)
 *   BENCH_CONNECTIONS  concurrent connections (50)
 *   BENCH_PIPELINING   requests in flight per connection (1)
 *   BENCH_LOG_LEVEL    the app's LOG_LEVEL (silent)
 *   BENCH_CPU_PROF_DIR when set, server processes run with --cpu-prof and write their profiles in a folder each under it
 *   BENCH_QUIET_WAIT   seconds to wait, before each measurement, for other processes to leave the machine quiet (30; Linux only)
 *   BENCH_RETRIES      how many times a measurement disturbed by other processes is repeated (2)
 *   BENCH_NO_REDIS=1   skip the Redis cases (they are reported as not run, and the run fails)
 *   BENCH_RESULTS      where to write the results (bench/RESULTS.md)
 *
 * A quick smoke run: `BENCH_DURATION=3 BENCH_WARMUP=1 npm run bench:http`.
 * The exit code is 1 when a target is missed or a case answered something other
 * than its expected status (or had connection errors).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compileProject, envInt, machineBusyMs, processCpuMs, spawnRedisServer, stopChild, writeResultsSection } from './common.js'
import autocannon from 'autocannon'
import { appCases, appServerSettings, BARE_CASE, type CaseSpec, checkSample, createTenant, RATE_LIMIT_MAX, type StoreName } from './http-cases.js'
import { isChildMessage, type ParentMessage, type ServerMode, SERVER_ENV } from './protocol.js'

const here = dirname(fileURLToPath(import.meta.url))
const projectRoot = resolve(here, '..')

const settings = {
  duration: envInt('BENCH_DURATION', 10, 1),
  warmup: envInt('BENCH_WARMUP', 2, 0),
  rounds: envInt('BENCH_ROUNDS', 3, 1),
  connections: envInt('BENCH_CONNECTIONS', 50, 1),
  pipelining: envInt('BENCH_PIPELINING', 1, 1),
  logLevel: process.env.BENCH_LOG_LEVEL ?? 'silent',
  cpuProfDir: process.env.BENCH_CPU_PROF_DIR,
  noRedis: process.env.BENCH_NO_REDIS === '1',
  quietWait: envInt('BENCH_QUIET_WAIT', 30, 0),
  retries: envInt('BENCH_RETRIES', 2, 0),
  resultsPath: resolve(process.env.BENCH_RESULTS ?? join(here, 'RESULTS.md'))
}

/** Minimum share of the bare route's req/s each store must reach. */
const TARGETS = { bare: null, file: 0.6, redis: 0.3 } as const satisfies Record<StoreName, number | null>

/** Other processes using more than this share of the machine during a case make its req/s suspect. */
const NOISE_LIMIT_PERCENT = 10

interface CaseResult {
  spec: CaseSpec
  ran: true
  rps: number
  p50: number
  p99: number
  requests: number
  errors: number
  timeouts: number
  non2xx: number
  statusCodes: Record<string, number>
  /** CPU time the server process spent per completed request, µs: unlike req/s, barely moved by other load on the machine. */
  serverCpuPerRequest: number
  /** CPU time redis-server spent per request, µs (Redis cases on Linux only). */
  redisCpuPerRequest: number | null
  /** CPU used by anything but this benchmark's processes while the case ran, % of all cores (Linux only). */
  otherCpuPercent: number | null
  /** Human-readable problems with what the server answered; empty when every response was the expected one. */
  problems: string[]
  /**
   * The bare route, measured in the window right before this case: the case is
   * judged against it, so a machine whose speed drifts during the run (shared
   * VMs do, by a third within minutes) compares like with like.
   */
  baseline?: CaseResult
  /** Each round's req/s over its bare window's, in the order measured; this result is the median round. */
  roundRatios?: number[]
}

interface NotRun {
  spec: CaseSpec
  ran: false
  reason: string
}

type Outcome = CaseResult | NotRun

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>()

function killAll (): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => { killAll(); process.exit(130) })
}

interface RedisServer { url: string, version: string, cpu: () => number | null, stop: () => Promise<void> }

/** The CPU counters in µs, the unit of this benchmark's per-request figures. */
const procCpuUs = (pid: number | undefined): number | null => { const ms = processCpuMs(pid); return ms === null ? null : ms * 1000 }
const machineBusyUs = (): number | null => { const ms = machineBusyMs(); return ms === null ? null : ms * 1000 }

async function startRedis (): Promise<RedisServer> {
  const { url, version, child } = await spawnRedisServer('set BENCH_NO_REDIS=1 to skip the Redis cases')
  children.add(child)
  return {
    url,
    version,
    cpu: () => procCpuUs(child.pid),
    stop: async () => { await stopTracked(child, 'SIGTERM') }
  }
}

async function stopTracked (child: ChildProcess, signal: NodeJS.Signals, message?: ParentMessage): Promise<void> {
  await stopChild(child, { signal, message, graceMs: 10_000 })
  children.delete(child)
}

interface ServerProcess {
  url: string
  store: string | null
  /** The server process's CPU time so far, µs. */
  cpu: () => Promise<number>
  stop: () => Promise<void>
}

/** Forks bench/server.js of the build in `buildDir`. */
async function startServer (buildDir: string, mode: ServerMode, env: Record<string, string | undefined>): Promise<ServerProcess> {
  const execArgv: string[] = []
  if (settings.cpuProfDir !== undefined) {
    // One folder per server process.
    const name = mode === 'bare' ? 'bare' : `app-${env[SERVER_ENV.redisUrl] === undefined ? 'file' : 'redis'}`
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(resolve(settings.cpuProfDir), `${name}-${Date.now()}`)}`)
  }
  const child = fork(join(buildDir, 'bench', 'server.js'), [], {
    cwd: projectRoot,
    execArgv,
    env: { ...process.env, [SERVER_ENV.mode]: mode, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  children.add(child)
  const ready = await new Promise<{ url: string, store: string | null }>((resolveReady, reject) => {
    const timer = setTimeout(() => { reject(new Error(`the ${mode} server did not start within 120 s`)) }, 120_000)
    child.on('message', (message: unknown) => {
      if (!isChildMessage(message) || message.type === 'usage') return
      clearTimeout(timer)
      if (message.type === 'ready') resolveReady({ url: message.url, store: message.store })
      else reject(new Error(`the ${mode} server failed to start:\n${message.message}`))
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the ${mode} server exited before it was ready (code ${String(code)}, signal ${String(signal)})`))
    })
  })
  const cpu = async (): Promise<number> => await new Promise((resolveUsage, reject) => {
    const onMessage = (message: unknown): void => {
      if (!isChildMessage(message) || message.type !== 'usage') return
      child.off('message', onMessage)
      resolveUsage(message.user + message.system)
    }
    child.on('message', onMessage)
    child.send({ type: 'usage' } satisfies ParentMessage, (error) => { if (error !== null) { child.off('message', onMessage); reject(error) } })
  })
  return { ...ready, cpu, stop: async () => { await stopTracked(child, 'SIGTERM', { type: 'stop' }) } }
}

async function cannon (base: string, spec: CaseSpec, duration: number): Promise<autocannon.Result> {
  return await autocannon({
    url: base + spec.path,
    method: spec.method,
    headers: spec.token === undefined ? {} : { token: spec.token },
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration
  })
}

interface Snapshot { wall: number, server: number, self: number, redis: number | null, machine: number | null }

async function snapshot (server: ServerProcess, redis: RedisServer | null): Promise<Snapshot> {
  const self = process.cpuUsage()
  return {
    wall: performance.now() * 1000,
    server: await server.cpu(),
    self: self.user + self.system,
    redis: redis === null ? null : redis.cpu(),
    machine: machineBusyUs()
  }
}

/**
 * Waits (up to BENCH_QUIET_WAIT s) until processes other than this benchmark
 * use less than NOISE_LIMIT_PERCENT of the machine, sampled over 1 s: our own
 * processes are idle between cases, so whatever is busy then is someone else.
 */
async function waitForQuiet (): Promise<void> {
  if (machineBusyUs() === null) return
  const deadline = Date.now() + settings.quietWait * 1000
  let announced = false
  while (Date.now() < deadline) {
    const before = machineBusyUs() ?? 0
    const started = performance.now()
    await new Promise(resolveSleep => setTimeout(resolveSleep, 1000))
    const busy = ((machineBusyUs() ?? 0) - before) / ((performance.now() - started) * 1000 * os.cpus().length) * 100
    if (busy < NOISE_LIMIT_PERCENT) return
    if (!announced) process.stdout.write(`(machine busy ${busy.toFixed(0)} %, waiting up to ${settings.quietWait} s) `)
    announced = true
  }
}

async function measureOnce (server: ServerProcess, redis: RedisServer | null, spec: CaseSpec): Promise<CaseResult> {
  const base = server.url
  await waitForQuiet()
  if (settings.warmup > 0) await cannon(base, spec, settings.warmup)
  const before = await snapshot(server, redis)
  const result = await cannon(base, spec, settings.duration)
  const after = await snapshot(server, redis)

  const serverCpu = after.server - before.server
  const redisCpu = after.redis !== null && before.redis !== null ? after.redis - before.redis : null
  let otherCpuPercent: number | null = null
  if (after.machine !== null && before.machine !== null) {
    const ours = serverCpu + (after.self - before.self) + (redisCpu ?? 0)
    const capacity = (after.wall - before.wall) * os.cpus().length
    otherCpuPercent = Math.max(0, (after.machine - before.machine - ours) / capacity * 100)
  }

  const problems: string[] = []
  const statusCodes: Record<string, number> = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stats.count ?? 0
  const unexpected = Object.entries(statusCodes).filter(([code]) => Number(code) !== spec.expectedStatus)
  if (unexpected.length > 0) problems.push(`unexpected statuses under load: ${unexpected.map(([code, count]) => `${count} x ${code}`).join(', ')}`)
  if (result.errors > 0) problems.push(`${result.errors} connection errors (${result.timeouts} timeouts)`)
  if (result.requests.total === 0) problems.push('no request completed')

  return {
    spec,
    ran: true,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    serverCpuPerRequest: result.requests.total > 0 ? serverCpu / result.requests.total : 0,
    redisCpuPerRequest: redisCpu === null || result.requests.total === 0 ? null : redisCpu / result.requests.total,
    otherCpuPercent,
    problems
  }
}

/** Measures a case; a run disturbed by other load is repeated (BENCH_RETRIES times at most) and the least disturbed run is kept. */
async function measure (server: ServerProcess, redis: RedisServer | null, spec: CaseSpec): Promise<CaseResult> {
  const sampleProblems = await checkSample(server.url, spec, 'before')
  process.stdout.write(`  ${spec.id}: measuring ${settings.duration} s ... `)
  let best: CaseResult | null = null
  for (let attempt = 0; attempt <= settings.retries; attempt++) {
    const outcome = await measureOnce(server, redis, spec)
    if (best === null || (outcome.otherCpuPercent ?? 0) < (best.otherCpuPercent ?? 0)) best = outcome
    if ((outcome.otherCpuPercent ?? 0) <= NOISE_LIMIT_PERCENT) break
    if (attempt < settings.retries) process.stdout.write(`(disturbed: other load ${(outcome.otherCpuPercent ?? 0).toFixed(0)} %, again) `)
  }
  if (best === null) throw new Error('unreachable: no attempt ran')
  best.problems.unshift(...sampleProblems)
  best.problems.push(...await checkSample(server.url, spec, 'after'))

  const other = best.otherCpuPercent === null ? '' : `, other load ${best.otherCpuPercent.toFixed(0)} %`
  console.log(`${Math.round(best.rps)} req/s, p50 ${best.p50} ms, p99 ${best.p99} ms, server ${best.serverCpuPerRequest.toFixed(0)} µs CPU/req${other}${best.problems.length > 0 ? ' [PROBLEMS]' : ''}`)
  for (const problem of best.problems) console.log(`    ! ${problem}`)
  return best
}

/** A fresh app on `store`, with the account and instance the cases use; returns the server and the account's token. */
async function startApp (buildDir: string, store: 'file' | 'redis', redis: RedisServer | null): Promise<{ server: ServerProcess, token: string }> {
  const { adminToken, env } = appServerSettings(redis?.url, settings.logLevel)
  const server = await startServer(buildDir, 'app', env)
  try {
    if (server.store !== store) throw new Error(`expected the ${store} store, the app opened ${String(server.store)}`)
    return { server, token: await createTenant(server.url, adminToken) }
  } catch (error) {
    await server.stop()
    throw error
  }
}

/** One round of a case: a fresh bare server's window, then a fresh app's window on the case. */
async function round (buildDir: string, store: 'file' | 'redis', redis: RedisServer | null, caseIndex: number): Promise<CaseResult> {
  const bare = await startServer(buildDir, 'bare', {})
  try {
    const app = await startApp(buildDir, store, redis)
    try {
      const spec = appCases(store, app.token)[caseIndex]
      if (spec === undefined) throw new Error(`no case ${caseIndex} on the ${store} store`)
      const baseline = await measure(bare, null, BARE_CASE)
      return { ...await measure(app.server, redis, spec), baseline }
    } finally {
      await app.server.stop()
    }
  } finally {
    await bare.stop()
  }
}

async function runApp (buildDir: string, store: 'file' | 'redis', redis: RedisServer | null): Promise<CaseResult[]> {
  const results: CaseResult[] = []
  for (const caseIndex of appCases(store, '').keys()) {
    const rounds: CaseResult[] = []
    for (let number = 1; number <= settings.rounds; number++) {
      if (settings.rounds > 1) console.log(`  round ${number} of ${settings.rounds}`)
      rounds.push(await round(buildDir, store, redis, caseIndex))
    }
    results.push(medianRound(rounds))
  }
  return results
}

/** A round's req/s over its own bare window's; 0 when that window is unusable. */
function roundRatio (round: CaseResult): number {
  const bare = round.baseline
  return bare === undefined || bare.problems.length > 0 || bare.rps === 0 ? 0 : round.rps / bare.rps
}

/**
 * The round with the median ratio (the lower one of an even count), carrying
 * every round's ratio and every round's problems: a wrong answer in any round
 * still fails the case.
 */
function medianRound (rounds: CaseResult[]): CaseResult {
  const ranked = [...rounds].sort((a, b) => roundRatio(a) - roundRatio(b))
  const median = ranked[Math.floor((ranked.length - 1) / 2)]
  if (median === undefined) throw new Error('unreachable: a case ran no round')
  const problems = [...new Set(rounds.flatMap(round => round.problems))]
  return { ...median, problems, roundRatios: rounds.map(roundRatio) }
}

// ---------------------------------------------------------------- report

interface Machine { cpu: string, cores: number, memoryGiB: string, node: string, os: string, redis: string }

function machine (redisVersion: string): Machine {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: (os.totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    redis: redisVersion
  }
}

function versionOf (name: string): string {
  try {
    const require = createRequire(join(projectRoot, 'package.json'))
    return (require(`${name}/package.json`) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function command (): string {
  const overrides = Object.entries(process.env)
    .filter(([name, value]) => name.startsWith('BENCH_') && value !== undefined && value !== '' && !Object.values(SERVER_ENV).includes(name as never))
    .map(([name, value]) => `${name}=${String(value)}`)
    .sort()
  return [...overrides, 'npm run bench:http'].join(' ')
}

interface Verdict { ratio: number | null, target: number | null, pass: boolean | null }

/** A case (its median round) against the bare window measured right before it. */
function verdict (outcome: Outcome): Verdict {
  const target = TARGETS[outcome.spec.store]
  const bare = outcome.ran ? outcome.baseline : undefined
  const bareRps = bare !== undefined && bare.problems.length === 0 ? bare.rps : null
  if (!outcome.ran || bareRps === null || bareRps === 0) return { ratio: null, target, pass: target === null ? null : false }
  const ratio = outcome.rps / bareRps
  if (target === null) return { ratio, target, pass: null }
  return { ratio, target, pass: outcome.problems.length === 0 && ratio >= target }
}

/** The bare route's CPU per request over this case's (its redis-server's included): the req/s ratio a CPU-bound server would reach, whatever else runs on the machine. */
function cpuRatio (outcome: CaseResult, bareCpu: number | null): string {
  const cost = outcome.serverCpuPerRequest + (outcome.redisCpuPerRequest ?? 0)
  return bareCpu === null || cost === 0 ? '-' : pct(bareCpu / cost)
}

const pct = (value: number): string => `${(value * 100).toFixed(1)} %`
const int = (value: number): string => Math.round(value).toLocaleString('en-US')

function table (outcomes: Outcome[]): string {
  const rows = [
    '| Case | Store | Route | req/s (mean) | p50 (ms) | p99 (ms) | Requests | Errors | Non-2xx | Statuses | Server CPU/req (µs) | Redis CPU/req (µs) | Other load | Bare route just before: req/s | its CPU/req (µs) | vs bare (CPU/req) | vs bare (req/s) | Every round vs bare (req/s) | Target | Result |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|--:|---|'
  ]
  for (const outcome of outcomes) {
    const { ratio, target, pass } = verdict(outcome)
    const bare = outcome.ran ? outcome.baseline : undefined
    const bareCpu = bare === undefined ? null : bare.serverCpuPerRequest
    const disturbed = outcome.ran && (isNoisy(outcome) || (bare !== undefined && isNoisy(bare)))
    const result = (pass === null ? (outcome.ran && outcome.problems.length > 0 ? 'INVALID' : 'baseline') : pass ? 'PASS' : 'FAIL') + (disturbed ? ' (disturbed)' : '')
    const targetText = target === null ? '-' : `>= ${pct(target)}`
    if (!outcome.ran) {
      rows.push(`| ${outcome.spec.id} | ${outcome.spec.store} | \`${outcome.spec.route}\` | not run | | | | | | | | | | | | | | | ${targetText} | FAIL (${outcome.reason}) |`)
      continue
    }
    const statuses = Object.entries(outcome.statusCodes).map(([code, count]) => `${code}: ${int(count)}`).join(', ')
    rows.push(`| ${outcome.spec.id} | ${outcome.spec.store} | \`${outcome.spec.route}\` | ${int(outcome.rps)} | ${outcome.p50} | ${outcome.p99} | ${int(outcome.requests)} | ${outcome.errors} | ${int(outcome.non2xx)} | ${statuses} | ${outcome.serverCpuPerRequest.toFixed(1)} | ${outcome.redisCpuPerRequest === null ? '-' : outcome.redisCpuPerRequest.toFixed(1)} | ${outcome.otherCpuPercent === null ? '?' : `${outcome.otherCpuPercent.toFixed(0)} %`} | ${bare === undefined ? '-' : int(bare.rps)} | ${bareCpu === null ? '-' : bareCpu.toFixed(1)} | ${cpuRatio(outcome, bareCpu)} | ${ratio === null ? '-' : pct(ratio)} | ${outcome.roundRatios?.map(pct).join(', ') ?? '-'} | ${targetText} | ${result}${outcome.problems.length > 0 && pass !== null ? ' (wrong responses)' : ''} |`)
  }
  return rows.join('\n')
}

function section (outcomes: Outcome[], info: Machine, date: Date): string {
  const problems = outcomes.flatMap(outcome => outcome.ran ? outcome.problems.map(problem => `- ${outcome.spec.id}: ${problem}`) : [])
  const noisy = noisyCases(outcomes)
  return [
    '## HTTP (bench/http.ts)',
    '',
    `Date: ${date.toISOString()}`,
    '',
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB RAM, Node ${info.node}, ${info.os}; redis-server ${info.redis}; fastify ${versionOf('fastify')}, autocannon ${versionOf('autocannon')}.`,
    '',
    `Command: \`${command()}\``,
    '',
    `Load: autocannon, ${settings.connections} connections, pipelining ${settings.pipelining}, ${settings.duration} s measured per window after ${settings.warmup} s of unmeasured warm-up. ` +
      'The load generator runs in the parent process; each server runs in its own child process (bench/server.js, built with tsc). ' +
      'Every app window comes right after a window of the same length on the bare route and is compared with that window, so a drift of the machine\'s speed during the run cancels out. ' +
      `Each app case runs ${settings.rounds} such (bare, case) rounds, each with a fresh bare server and a fresh app, so one process that settles in a slower state cannot decide a case; ` +
      'its row shows the round with the median ratio, and that ratio is judged, so one disturbed window can neither pass nor fail a case.',
    '',
    `App settings: LOG_LEVEL=${settings.logLevel}, auth by \`token\` header (an account token), rate limiting on with RATE_LIMIT_MAX=${RATE_LIMIT_MAX}. ` +
      'The account and instance are created over HTTP, in each fresh app, before its measurements. The reconnect case targets an instance with no saved session; ' +
      'every response under load must be a 400 (a sample is also checked for the message, before and after the load, so a 429 from the limiter cannot pass for it).',
    '',
    table(outcomes),
    '',
    '"Server CPU/req" is the server process\'s CPU time divided by the requests it completed; "Other load" is the CPU that processes other than this benchmark ' +
      '(its load generator, server and redis-server) used during the case, as a share of all cores: req/s is only comparable between cases when it is near 0. ' +
      '"vs bare (CPU/req)" is the bare route\'s server CPU per request over this case\'s (server plus redis-server): a ratio that other load disturbs much less, for information; the targets are judged on req/s.',
    ...(noisy.length > 0 ? ['', `**Warning:** other processes used more than ${NOISE_LIMIT_PERCENT} % of the machine during ${noisy.join(', ')}; req/s and the ratios are disturbed (marked "(disturbed)", including every case when the bare baseline was). Rerun on a quiet machine.`] : []),
    '',
    `Targets: req/s of each app route >= ${pct(TARGETS.file)} of the bare route on the embedded file store, >= ${pct(TARGETS.redis)} with Redis (REDIS_URL set, private redis-server on 127.0.0.1), bare route measured right before each case.`,
    ...(problems.length > 0 ? ['', 'Problems:', ...problems] : [])
  ].join('\n')
}

function isNoisy (outcome: CaseResult): boolean {
  return (outcome.otherCpuPercent ?? 0) > NOISE_LIMIT_PERCENT
}

function noisyCases (outcomes: Outcome[]): string[] {
  return outcomes.filter(outcome => outcome.ran && isNoisy(outcome)).map(outcome => outcome.spec.id)
}

async function writeResults (text: string): Promise<void> {
  await writeResultsSection(settings.resultsPath, 'http', text)
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const date = new Date()
  console.log(`bench:http: ${settings.connections} connections, pipelining ${settings.pipelining}, ${settings.warmup} s warm-up + ${settings.duration} s per window, ${settings.rounds} rounds per case`)
  const outcomes: Outcome[] = []

  let redisVersion = 'not run'
  const buildDir = await compileProject('bench/server.js')
  try {
    console.log('app, embedded file store (every case window right after a bare Fastify window; fresh servers every round)')
    outcomes.push(...await runApp(buildDir, 'file', null))

    console.log('app, Redis store (every case window right after a bare Fastify window; fresh servers every round)')
    if (settings.noRedis) {
      outcomes.push(...appCases('redis', '').map(spec => ({ spec, ran: false as const, reason: 'BENCH_NO_REDIS=1' })))
    } else {
      const redis = await startRedis()
      redisVersion = redis.version
      try {
        outcomes.push(...await runApp(buildDir, 'redis', redis))
      } finally {
        await redis.stop()
      }
    }
  } finally {
    await rm(buildDir, { recursive: true, force: true })
  }

  const info = machine(redisVersion)
  const text = section(outcomes, info, date)
  await writeResults(text)

  console.log('')
  console.log(table(outcomes))
  console.log('')
  console.log(`targets: file store >= ${pct(TARGETS.file)} of bare, Redis >= ${pct(TARGETS.redis)} of bare`)
  console.log(`machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB, Node ${info.node}`)
  const noisy = noisyCases(outcomes)
  if (noisy.length > 0) console.log(`WARNING: other processes used more than ${NOISE_LIMIT_PERCENT} % of the machine during ${noisy.join(', ')}; rerun on a quiet machine`)
  console.log(`results written to ${relative(process.cwd(), settings.resultsPath) || settings.resultsPath}`)

  const failed = outcomes.some(outcome => {
    if (outcome.ran && outcome.problems.length > 0) return true
    return verdict(outcome).pass === false
  })
  for (const outcome of outcomes) {
    const { pass } = verdict(outcome)
    if (pass !== null) console.log(`${pass ? 'PASS' : 'FAIL'} ${outcome.spec.id}`)
  }
  if (failed) process.exitCode = 1
}

try {
  await main()
} finally {
  killAll()
}
