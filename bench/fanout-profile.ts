/**
 * Summarises a V8 .cpuprofile (from bench/fanout-server.ts's profiler or from
 * `node --cpu-prof`) for bench/fanout.ts: where the sampled time went, by
 * function (self and inclusive time) and by code area (the service's own
 * files, ws, ioredis, fastify, Node internals, GC, idle).
 *
 * Also runnable on its own:
 *   node --import @tapjs/typescript/import bench/fanout-profile.ts <file.cpuprofile> [top]
 */
import { readFile } from 'node:fs/promises'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

const projectRoot = fileURLToPath(new URL('..', import.meta.url))

function fileOf (url: string): string {
  if (url === '') return ''
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  return path.startsWith(projectRoot) ? relative(projectRoot, path) : path
}

/** A coarse code area for a frame: the service's own code, a library, Node, or V8's pseudo-frames. */
function areaOf (frame: CallFrame): string {
  const name = frame.functionName
  if (name === '(idle)') return 'idle'
  if (name === '(garbage collector)') return 'GC'
  if (name === '(program)') return 'V8/native (program)'
  if (name === '(root)') return 'root'
  const file = fileOf(frame.url)
  if (file === '') return `native: ${name === '' ? '(anonymous)' : name}`
  const lib = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1]
  if (lib !== undefined) return `lib: ${lib}`
  if (file.startsWith('node:')) return `node: ${file.slice(5).split('/')[0] ?? file}`
  return `service: ${file}`
}

function keyOf (frame: CallFrame): string {
  const file = fileOf(frame.url)
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  return file === '' ? name : `${name} ${file}:${frame.lineNumber + 1}`
}

export interface ProfileSummary {
  totalMs: number
  idleMs: number
  bySelf: Array<{ key: string, ms: number }>
  byInclusive: Array<{ key: string, ms: number }>
  byArea: Array<{ area: string, ms: number }>
}

export async function summarizeProfile (path: string, top = 25): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const area = new Map<string, number>()
  let total = 0
  let idle = 0
  const add = (map: Map<string, number>, key: string, us: number): void => { map.set(key, (map.get(key) ?? 0) + us) }
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample's time is the gap to the next sample.
    const us = profile.timeDeltas[i + 1] ?? 0
    const leaf = byId.get(profile.samples[i] as number)
    if (leaf === undefined) continue
    total += us
    if (leaf.callFrame.functionName === '(idle)') idle += us
    add(self, keyOf(leaf.callFrame), us)
    add(area, areaOf(leaf.callFrame), us)
    const seen = new Set<string>()
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id)
      if (node === undefined) break
      const key = keyOf(node.callFrame)
      if (seen.has(key)) continue
      seen.add(key)
      add(inclusive, key, us)
    }
  }
  const sorted = (map: Map<string, number>): Array<[string, number]> => [...map].sort((a, b) => b[1] - a[1])
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    bySelf: sorted(self).slice(0, top).map(([key, us]) => ({ key, ms: us / 1000 })),
    byInclusive: sorted(inclusive).filter(([key]) => key !== '(root)').slice(0, top).map(([key, us]) => ({ key, ms: us / 1000 })),
    byArea: sorted(area).map(([name, us]) => ({ area: name, ms: us / 1000 }))
  }
}

export function formatSummary (summary: ProfileSummary): string {
  const busy = summary.totalMs - summary.idleMs
  const share = (ms: number): string => `${ms.toFixed(1).padStart(9)} ms ${(busy > 0 ? ms / busy * 100 : 0).toFixed(1).padStart(5)} % of busy`
  return [
    `sampled ${summary.totalMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms, busy ${busy.toFixed(0)} ms`,
    'by area (self time):',
    ...summary.byArea.filter(row => row.area !== 'idle').map(row => `  ${share(row.ms)}  ${row.area}`),
    'top functions by self time:',
    ...summary.bySelf.filter(row => row.key !== '(idle)').map(row => `  ${share(row.ms)}  ${row.key}`),
    'top functions by inclusive time:',
    ...summary.byInclusive.filter(row => row.key !== '(idle)').map(row => `  ${share(row.ms)}  ${row.key}`)
  ].join('\n')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [path, top] = process.argv.slice(2)
  if (path === undefined) {
    console.error('usage: bench/fanout-profile.ts <file.cpuprofile> [top]')
    process.exit(2)
  }
  console.log(formatSummary(await summarizeProfile(path, top === undefined ? 25 : Number(top))))
}
