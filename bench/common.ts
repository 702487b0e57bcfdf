// Helpers the benchmark scripts share: settings from the environment, CPU accounting
// from /proc, a private redis-server, a compiled build, and writing one section of RESULTS.md.
import { type ChildProcess, type Serializable, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { access, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../test/support/ports.js'

const projectRoot = fileURLToPath(new URL('..', import.meta.url))

export function envInt (name: string, fallback: number, minimum: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < minimum) throw new Error(`${name} must be an integer >= ${minimum}, got ${raw}`)
  return value
}

/** Clock ticks per second of /proc's CPU counters. */
const CLOCK_TICKS = (() => {
  const probe = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const value = Number(probe.stdout?.trim())
  return probe.status === 0 && Number.isFinite(value) && value > 0 ? value : 100
})()

/** CPU time of a process in ms, from /proc (Linux); null elsewhere. */
export function processCpuMs (pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // After the command name (which may hold spaces): utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS * 1000
  } catch {
    return null
  }
}

/** CPU time every core of the machine spent busy, in ms, from /proc/stat (Linux); null elsewhere. */
export function machineBusyMs (): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    const busy = [user, nice, system, irq, softirq, steal].reduce<number>((sum, value) => sum + (value ?? 0), 0)
    return Number.isFinite(busy) ? busy / CLOCK_TICKS * 1000 : null
  } catch {
    return null
  }
}

/**
 * Writes `body` as the section of a results file between
 * `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`, replacing the
 * previous one (the file is re-read right before writing, so benchmarks run
 * one after another keep each other's sections).
 */
export async function writeResultsSection (path: string, name: string, body: string): Promise<void> {
  const startMarker = `<!-- bench:${name}:start -->`
  const endMarker = `<!-- bench:${name}:end -->`
  const section = `${startMarker}\n${body}\n${endMarker}`
  let current = ''
  try {
    current = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const start = current.indexOf(startMarker)
  const end = current.indexOf(endMarker, start)
  let next: string
  if (start !== -1 && end !== -1) next = current.slice(0, start) + section + current.slice(end + endMarker.length)
  else if (current.trim() === '') next = `# Benchmark results\n\n${section}\n`
  else next = `${current.replace(/\s*$/, '')}\n\n${section}\n`
  await writeFile(path, next)
}

/** A private redis-server on a free port, ready to serve; the caller owns (and stops) the child. */
export async function spawnRedisServer (missingHint: string): Promise<{ url: string, version: string, child: ChildProcess }> {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.status !== 0) throw new Error(`redis-server is not installed (${missingHint})`)
  const version = /v=(\S+)/.exec(probe.stdout)?.[1] ?? probe.stdout.trim()
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolveReady, reject) => {
    let output = ''
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData)
        child.off('exit', onExit)
        child.stdout?.resume()
        resolveReady()
      }
    }
    const onExit = (code: number | null): void => { reject(new Error(`redis-server exited with ${String(code)}: ${output}`)) }
    child.stdout?.on('data', onData)
    child.once('exit', onExit)
  })
  return { url: `redis://127.0.0.1:${port}`, version, child }
}

/**
 * Compiles the project (tsconfig.json, so the app, test/support and bench) to
 * plain JavaScript in a temp directory, as production runs it (`node
 * dist/server.js`): processes started from it carry neither ts-node nor the
 * TypeScript compiler, and their startup is a real one. `entry` (a path in the
 * build, such as `bench/server.js`) must exist afterwards. The caller removes the directory.
 */
export async function compileProject (entry: string): Promise<string> {
  const outDir = await mkdtemp(join(tmpdir(), 'wa-bench-build-'))
  const tsc = join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc')
  const child = spawn(process.execPath, [tsc, '-p', join(projectRoot, 'tsconfig.json'), '--outDir', outDir, '--sourceMap', 'false', '--noEmitOnError', 'false'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>(resolve => { child.once('exit', resolve) })
  // Type errors (tsc exits 2) still emit; `npx tsc` is where they are reported.
  if (code !== 0) process.stderr.write(`tsc exited with ${String(code)} (emitted anyway):\n${output.split('\n').slice(0, 10).join('\n')}\n`)
  await access(join(outDir, entry))
  await symlink(join(projectRoot, 'node_modules'), join(outDir, 'node_modules'), 'dir')
  await writeFile(join(outDir, 'package.json'), JSON.stringify({ type: 'module' }))
  return outDir
}

/**
 * Stops a child process: with the IPC `message` when it has one and the channel
 * is open (a clean exit, which --cpu-prof and callgrind need to write their
 * files), else with `signal`; SIGKILL once `graceMs` have passed.
 */
export async function stopChild (child: ChildProcess, options: { signal: NodeJS.Signals, message?: Serializable, graceMs: number }): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>(resolveExit => { child.once('exit', () => { resolveExit() }) })
  if (options.message !== undefined && child.connected) child.send(options.message)
  else child.kill(options.signal)
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.graceMs)
  await exited
  clearTimeout(timer)
}
