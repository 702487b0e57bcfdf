/**
 * Instructions per request: `npm run bench:instructions` (Linux, needs valgrind).
 *
 * bench:http measures req/s, which a shared VM moves by a third within minutes,
 * too much to see what a change to the request path costs. This benchmark counts
 * the CPU instructions the server's main thread executes per request, under
 * valgrind's callgrind: the same build gives the same count within about 1 %, on
 * any machine. It sees neither system time nor cache misses nor the other threads
 * (V8's background compiler and GC helpers), so req/s stays the judged figure;
 * this one is the stable signal for comparing two builds.
 *
 * The same requests as bench:http (bench/http-cases.ts): the bare Fastify route,
 * then the app's routes on the embedded file store and on Redis (a private
 * redis-server). Each server runs from a tsc build (bench/server.js) under
 * callgrind with instrumentation off, so startup and warm-up run several times
 * faster; every case gets BENCH_WARMUP_REQUESTS requests, then instrumentation
 * goes on for exactly BENCH_REQUESTS requests and the main thread's count is
 * read from callgrind's dump.
 *
 * Environment (all optional):
 *   BENCH_WARMUP_REQUESTS  requests before counting, so V8 has optimised the path (15000)
 *   BENCH_REQUESTS         requests counted per case (5000)
 *   BENCH_CONNECTIONS      concurrent connections (50)
 *   BENCH_PROCESSES        fresh server processes per server kind; each case keeps the least count (2)
 *   BENCH_NO_REDIS=1       skip the Redis cases
 *   BENCH_RESULTS          where to write the results (bench/RESULTS.md)
 *
 * Now and then a process settles for its whole life in a slower V8 state
 * (seen here: the object literal in process.nextTick falling to a runtime path
 * on every call, 20-35 % more instructions per request, in about one process
 * in four). A fresh process is a fresh draw, so each server kind runs in
 * BENCH_PROCESSES processes and each case keeps its least count; the table
 * shows every process's count.
 *
 * Takes about 10 minutes. The exit code is 1 when a case answered something other than its expected status.
 */
import { execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import autocannon from 'autocannon'
import { compileProject, envInt, spawnRedisServer, stopChild, writeResultsSection } from './common.js'
import { appCases, appServerSettings, BARE_CASE, type CaseSpec, checkSample, createTenant } from './http-cases.js'
import { isChildMessage, type ServerMode, SERVER_ENV } from './protocol.js'

const here = fileURLToPath(new URL('.', import.meta.url))

const settings = {
  warmupRequests: envInt('BENCH_WARMUP_REQUESTS', 15_000, 0),
  requests: envInt('BENCH_REQUESTS', 5_000, 1),
  connections: envInt('BENCH_CONNECTIONS', 50, 1),
  processes: envInt('BENCH_PROCESSES', 2, 1),
  noRedis: process.env.BENCH_NO_REDIS === '1',
  resultsPath: resolve(process.env.BENCH_RESULTS ?? join(here, 'RESULTS.md'))
}

const run = promisify(execFile)

const thousands = (value: number): string => Math.round(value).toLocaleString('en-US')

interface Counted {
  spec: CaseSpec
  /** Instructions the main thread executed per request (callgrind's Ir). */
  mainThread: number
  /** Instructions every other thread executed per request: V8's compiler and GC helpers, which vary from run to run. */
  otherThreads: number
  /** The main thread's count in each server process that ran the case; `mainThread` is the least. */
  eachProcess: number[]
  problems: string[]
}

interface TracedServer {
  url: string
  /** Runs `load` with instrumentation on and returns the instructions per thread (main thread first) it cost. */
  count: (load: () => Promise<void>) => Promise<number[]>
  stop: () => Promise<void>
}

function requireValgrind (): string {
  const probe = spawnSync('valgrind', ['--version'], { encoding: 'utf8' })
  if (probe.status !== 0) throw new Error('valgrind is not installed (on Debian or Ubuntu: apt install valgrind)')
  return probe.stdout.trim()
}

async function startTraced (buildDir: string, mode: ServerMode, env: Record<string, string | undefined>): Promise<TracedServer> {
  const outDir = await mkdtemp(join(os.tmpdir(), 'wa-bench-callgrind-'))
  const child = spawn('valgrind', [
    '--tool=callgrind',
    // One file per thread: the main thread (-01) runs every request, apart from V8's helper threads.
    '--separate-threads=yes',
    '--instr-atstart=no',
    `--callgrind-out-file=${join(outDir, 'callgrind.out')}`,
    process.execPath, join(buildDir, 'bench', 'server.js')
  ], {
    env: { ...process.env, [SERVER_ENV.mode]: mode, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc']
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
  const url = await new Promise<string>((resolveReady, reject) => {
    child.on('message', (message: unknown) => {
      if (!isChildMessage(message) || message.type === 'usage') return
      if (message.type === 'ready') resolveReady(message.url)
      else reject(new Error(`the ${mode} server failed to start:\n${message.message}`))
    })
    child.once('exit', (code) => { reject(new Error(`the ${mode} server exited with ${String(code)}:\n${stderr}`)) })
  })
  let dumps = 0
  const pid = String(child.pid)
  return {
    url,
    count: async (load) => {
      await run('callgrind_control', ['--instr=on', pid])
      // Turning instrumentation back on does not restart the counts from the last dump; zeroing does.
      await run('callgrind_control', ['--zero', pid])
      await load()
      await run('callgrind_control', ['--dump', pid])
      await run('callgrind_control', ['--instr=off', pid])
      dumps++
      return await threadTotals(outDir, dumps)
    },
    stop: async () => {
      // A clean exit: callgrind writes its last files then.
      await stopChild(child, { signal: 'SIGTERM', message: { type: 'stop' }, graceMs: 60_000 })
      await rm(outDir, { recursive: true, force: true })
    }
  }
}

/** Callgrind's totals for every thread in dump number `dump` (`callgrind.out.<dump>-<thread>`), main thread first. */
async function threadTotals (outDir: string, dump: number): Promise<number[]> {
  const prefix = `callgrind.out.${dump}-`
  const files = (await readdir(outDir)).filter(name => name.startsWith(prefix)).sort()
  if (files.length === 0) throw new Error(`callgrind wrote no dump ${dump} in ${outDir}`)
  const totals: number[] = []
  for (const file of files) {
    const text = await readFile(join(outDir, file), 'utf8')
    const total = /^(?:summary|totals): (\d+)/m.exec(text)?.[1]
    totals.push(Number(total ?? 0))
  }
  return totals
}

/** Sends exactly `amount` requests of a case and returns the statuses answered, by code. */
async function load (base: string, spec: CaseSpec, amount: number): Promise<Record<string, number>> {
  const result = await autocannon({
    url: base + spec.path,
    method: spec.method,
    headers: spec.token === undefined ? {} : { token: spec.token },
    connections: settings.connections,
    amount,
    // A server under valgrind answers some 50 times slower than it does natively.
    timeout: 60
  })
  const statuses: Record<string, number> = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = stats.count ?? 0
  if (result.errors > 0) statuses.errors = result.errors
  return statuses
}

async function measure (server: TracedServer, spec: CaseSpec): Promise<Counted> {
  process.stdout.write(`  ${spec.id}: ${settings.warmupRequests} warm-up requests, then ${settings.requests} counted ... `)
  const problems = await checkSample(server.url, spec, 'before')
  if (settings.warmupRequests > 0) await load(server.url, spec, settings.warmupRequests)
  let statuses: Record<string, number> = {}
  const [main = 0, ...others] = await server.count(async () => { statuses = await load(server.url, spec, settings.requests) })
  const unexpected = Object.entries(statuses).filter(([code]) => code !== String(spec.expectedStatus))
  if (unexpected.length > 0) problems.push(`unexpected answers while counted: ${unexpected.map(([code, count]) => `${count} x ${code}`).join(', ')}`)
  const counted: Counted = {
    spec,
    mainThread: main / settings.requests,
    otherThreads: others.reduce((sum, value) => sum + value, 0) / settings.requests,
    eachProcess: [main / settings.requests],
    problems
  }
  console.log(`${thousands(counted.mainThread)} instructions/request on the main thread${problems.length > 0 ? ' [PROBLEMS]' : ''}`)
  for (const problem of problems) console.log(`    ! ${problem}`)
  return counted
}

async function measureApp (buildDir: string, store: 'file' | 'redis', redisUrl: string | undefined): Promise<Counted[]> {
  const { adminToken, env } = appServerSettings(redisUrl, 'silent')
  const server = await startTraced(buildDir, 'app', env)
  try {
    const token = await createTenant(server.url, adminToken)
    const counted: Counted[] = []
    for (const spec of appCases(store, token)) counted.push(await measure(server, spec))
    return counted
  } finally {
    await server.stop()
  }
}

/** Runs `measureOnce` in BENCH_PROCESSES fresh server processes; each case keeps the process that counted least, and every wrong answer. */
async function inFreshProcesses (measureOnce: () => Promise<Counted[]>): Promise<Counted[]> {
  const runs: Counted[][] = []
  for (let run = 0; run < settings.processes; run++) runs.push(await measureOnce())
  const [first = []] = runs
  return first.map((_, index) => {
    const ofCase = runs.flatMap(run => run[index] ?? [])
    const least = ofCase.reduce((best, next) => next.mainThread < best.mainThread ? next : best)
    return { ...least, eachProcess: ofCase.map(counted => counted.mainThread), problems: ofCase.flatMap(counted => counted.problems) }
  })
}


function table (rows: Counted[]): string {
  const bare = rows.find(row => row.spec.store === 'bare')?.mainThread
  const lines = [
    '| Case | Route | Main-thread instructions per request | Bare route over this case | Each process | Other threads per request (varies) | Result |',
    '|---|---|--:|--:|--:|--:|---|'
  ]
  for (const row of rows) {
    const ratio = bare === undefined || row.spec.store === 'bare' ? '-' : `${(bare / row.mainThread * 100).toFixed(1)} %`
    const result = row.problems.length > 0 ? 'INVALID (wrong responses)' : 'ok'
    lines.push(`| ${row.spec.id} | \`${row.spec.route}\` | ${thousands(row.mainThread)} | ${ratio} | ${row.eachProcess.map(thousands).join(', ')} | ${thousands(row.otherThreads)} | ${result} |`)
  }
  return lines.join('\n')
}

function section (rows: Counted[], skipped: string | null, valgrind: string, redisVersion: string, date: Date): string {
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown'
  return [
    '## Instructions per request (bench/instructions.ts)',
    '',
    `Date: ${date.toISOString()}`,
    '',
    `Machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${os.type()} ${os.release()} (${os.arch()}); ${valgrind}; redis-server ${redisVersion}.`,
    '',
    `Command: \`npm run bench:instructions\` with BENCH_WARMUP_REQUESTS=${settings.warmupRequests}, BENCH_REQUESTS=${settings.requests}, BENCH_CONNECTIONS=${settings.connections}, BENCH_PROCESSES=${settings.processes}.`,
    '',
    'The servers of bench:http (the same routes, app settings and rate limit), built with tsc and run under callgrind. ' +
      `Each case: ${settings.warmupRequests} requests uncounted, then ${settings.requests} counted (autocannon, ${settings.connections} connections), in ${settings.processes} fresh server processes; ` +
      'the figure is the least of their counts of what the main thread executed while they ran, divided by the number of requests. ' +
      'It leaves out system time, cache misses and the helper threads, so it is no substitute for req/s; it is the figure to compare two builds with, since it repeats within about 1 %.',
    '',
    table(rows),
    ...(skipped === null ? [] : ['', `Not run: ${skipped}.`])
  ].join('\n')
}

async function main (): Promise<void> {
  const date = new Date()
  const valgrind = requireValgrind()
  console.log(`bench:instructions: ${settings.warmupRequests} warm-up + ${settings.requests} counted requests per case, ${settings.connections} connections; compiling ...`)
  const buildDir = await compileProject('bench/server.js')
  const rows: Counted[] = []
  let skipped: string | null = null
  let redisVersion = 'not run'
  try {
    console.log('bare Fastify route')
    rows.push(...await inFreshProcesses(async () => {
      const bare = await startTraced(buildDir, 'bare', {})
      try {
        return [await measure(bare, BARE_CASE)]
      } finally {
        await bare.stop()
      }
    }))

    console.log('app, embedded file store')
    rows.push(...await inFreshProcesses(async () => await measureApp(buildDir, 'file', undefined)))

    if (settings.noRedis) {
      skipped = 'the Redis cases (BENCH_NO_REDIS=1)'
    } else {
      console.log('app, Redis store')
      const redis = await spawnRedisServer('set BENCH_NO_REDIS=1 to skip the Redis cases')
      redisVersion = redis.version
      try {
        rows.push(...await inFreshProcesses(async () => await measureApp(buildDir, 'redis', redis.url)))
      } finally {
        redis.child.kill('SIGTERM')
      }
    }
  } finally {
    await rm(buildDir, { recursive: true, force: true })
  }

  await writeResultsSection(settings.resultsPath, 'instructions', section(rows, skipped, valgrind, redisVersion, date))
  console.log('')
  console.log(table(rows))
  console.log(`results written to ${relative(process.cwd(), settings.resultsPath) || settings.resultsPath}`)
  if (rows.some(row => row.problems.length > 0)) process.exitCode = 1
}

await main()
