import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { openFileStore } from '../../stores/file-store.js'
import type { InstanceRecord } from '../../stores/store.js'
import { instanceRecord } from '../support/records.js'

/**
 * The file store is the default backend: one process owns a DATA_DIR, and a
 * process killed at any moment leaves every record either old or new, whole.
 * These are proved with real child processes (test/support/fixtures/file-store-child.ts).
 */

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const fixture = fileURLToPath(new URL('../support/fixtures/file-store-child.ts', import.meta.url))

type Message = Record<string, unknown> & { event?: string }

interface StoreChild {
  process: ChildProcess
  /** Resolves once the process is gone and its output fully read. */
  closed: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** The first message (already received or still to come) that matches. */
  waitFor: (event: string, timeoutMs?: number) => Promise<Message>
  send: (line: string) => void
  /** The highest round a writer reported as resolved. */
  lastAcked: () => number
  stderr: () => string
}

async function tempDataDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'wa-file-store-'))
}

/** A child running the fixture under the same TypeScript loader tap uses, killed when the test ends. */
function spawnStoreChild (t: Test, mode: 'hold' | 'write', dataDir: string): StoreChild {
  const env: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' }
  // tap's own hooks (coverage, process info) are for test files, not for this helper.
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', fixture, mode, dataDir], {
    cwd: repoRoot,
    env,
    stdio: ['pipe', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

  const messages: Message[] = []
  const listeners = new Set<() => void>()
  let stderr = ''
  let acked = 0
  let gone = false
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  createInterface({ input: child.stdout }).on('line', line => {
    const message = JSON.parse(line) as Message
    if (message.event === 'acked') acked = Math.max(acked, message.n as number)
    messages.push(message)
    for (const listener of listeners) listener()
  })
  const closed = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('close', (code, signal) => {
      gone = true
      for (const listener of listeners) listener()
      resolve({ code, signal })
    })
  })

  const waitFor = async (event: string, timeoutMs = 20_000): Promise<Message> => await new Promise((resolve, reject) => {
    const check = (): void => {
      const found = messages.find(message => message.event === event)
      if (found !== undefined) finish(() => { resolve(found) })
      else if (gone) finish(() => { reject(new Error(`child exited before "${event}": ${JSON.stringify(messages.slice(-3))} ${stderr}`)) })
    }
    const timer = setTimeout(() => { finish(() => { reject(new Error(`no "${event}" from the child within ${timeoutMs} ms: ${stderr}`)) }) }, timeoutMs)
    const finish = (settle: () => void): void => { clearTimeout(timer); listeners.delete(check); settle() }
    listeners.add(check)
    check()
  })

  return {
    process: child,
    closed,
    waitFor,
    send: line => { child.stdin.write(line + '\n') },
    lastAcked: () => acked,
    stderr: () => stderr
  }
}

const IN_USE = /is in use by another running process/

// The two groups below use separate directories; running them side by side
// overlaps the stale-lock wait with the writer rounds.
t.jobs = 2

t.test('one process owns a DATA_DIR', async t => {
  t.test('a second open in the same process is refused at once while the first is open, and allowed after it closes', async t => {
    const dataDir = await tempDataDir()
    const first = await openFileStore({ dataDir, lockWaitMs: 0 })
    let firstClosed = false
    t.teardown(async () => { if (!firstClosed) await first.close() })

    const started = Date.now()
    const refusal = await openFileStore({ dataDir, lockWaitMs: 0 }).then(
      async store => { await store.close(); return null },
      (error: unknown) => error as Error
    )
    t.ok(refusal instanceof Error, 'the second open is refused')
    t.match(refusal?.message, IN_USE)
    t.match(refusal?.message, /^DATA_DIR /, 'the message names the setting')
    t.ok(refusal?.message.includes(dataDir), 'and the directory in use')
    t.ok(Date.now() - started < 2_000, 'lockWaitMs 0 answers without waiting out the stale window')

    await first.close()
    firstClosed = true
    const second = await openFileStore({ dataDir, lockWaitMs: 0 })
    t.equal(second.kind, 'file')
    await second.close()
  })

  t.test('a store held open by another process refuses this one; after that process exits normally, opening works', async t => {
    const dataDir = await tempDataDir()
    const holder = spawnStoreChild(t, 'hold', dataDir)
    await holder.waitFor('open')

    await t.rejects(openFileStore({ dataDir, lockWaitMs: 0 }), IN_USE, 'refused while the other process runs')
    // A live holder refreshes its lock, so waiting for it to go stale does not help either.
    await t.rejects(openFileStore({ dataDir, lockWaitMs: 1_000 }), IN_USE, 'still refused after waiting')

    holder.send('close')
    await holder.waitFor('closed')
    t.same(await holder.closed, { code: 0, signal: null }, 'the holder exits normally')

    const store = await openFileStore({ dataDir, lockWaitMs: 0 })
    t.equal(store.kind, 'file', 'the lock was released on close')
    await store.close()
  })

  t.test('a process killed with SIGKILL cannot release its lock: it is honoured until stale, then taken over', async t => {
    const dataDir = await tempDataDir()
    const holder = spawnStoreChild(t, 'hold', dataDir)
    await holder.waitFor('open')
    holder.process.kill('SIGKILL')
    t.same(await holder.closed, { code: null, signal: 'SIGKILL' })
    t.ok((await stat(join(dataDir, 'store', 'store.lock'))).isDirectory(), 'the dead process left its lock behind')

    await t.rejects(openFileStore({ dataDir, lockWaitMs: 0 }), IN_USE, 'a fresh lock is honoured even though its owner is gone')

    // The default lockWaitMs waits out the 5 s stale window.
    const started = Date.now()
    const store = await openFileStore({ dataDir })
    const waited = Date.now() - started
    // 5 s stale window, 500 ms retry steps; the margin is for a loaded machine.
    t.ok(waited < 8_000, `opened after ${waited} ms, once the lock went stale`)
    await store.close()
  })
})

/** The round number a value was last written in, for key `k-<slot>` after `counter` rounds. */
function lastRoundOfSlot (counter: number, slot: number): number | null {
  const round = counter - ((counter - slot) % 50 + 50) % 50
  return round >= 1 ? round : null
}

/** Exactly what the session holds after rounds 1..counter of the writer (see the fixture). */
function expectedKeys (counter: number): Record<string, string> {
  const keys: Record<string, string> = { marker: String(counter) }
  for (let slot = 0; slot < 50; slot++) {
    const round = lastRoundOfSlot(counter, slot)
    if (round !== null) keys[`k-${slot}`] = String(round)
  }
  return keys
}

const blobFor = (n: number): string => `${n}:` + 'x'.repeat(50_000 + (n * 7919) % 150_000)

/** Every field of a complete instance record, as the shared factory builds one. */
const INSTANCE_FIELDS = Object.keys(instanceRecord('account', 'name')).sort()
const STORE_DIRS = ['accounts', 'instances', 'sessions']

/** Every entry of the store's record directories, by directory. */
async function storeEntries (dataDir: string): Promise<Record<string, string[]>> {
  const entries: Record<string, string[]> = {}
  for (const dir of STORE_DIRS) entries[dir] = (await readdir(join(dataDir, 'store', dir))).sort()
  return entries
}

t.test('a killed writer never leaves a torn file', async t => {
  const ROUNDS = 20
  const dataDir = await tempDataDir()
  const lockDir = join(dataDir, 'store', 'store.lock')

  // Loading TypeScript takes a child most of a second, so the next writers
  // load while the current one runs; none opens the store before it is told "go".
  const WARM_WRITERS = 4
  const pool: StoreChild[] = []
  const spawnWriter = (): StoreChild => spawnStoreChild(t, 'write', dataDir)
  for (let i = 0; i < WARM_WRITERS; i++) pool.push(spawnWriter())

  let instanceId: string | null = null
  let highestSeen = 0
  let roundsWithTempFile = 0

  for (let round = 1; round <= ROUNDS; round++) {
    const writer = pool.shift() ?? spawnWriter()
    if (round + pool.length < ROUNDS) pool.push(spawnWriter())
    const delayMs = 20 + Math.floor(Math.random() * 281)

    await t.test(`round ${round}: SIGKILL ${delayMs} ms after the writer began writing`, async t => {
      await writer.waitFor('loaded')
      writer.send('go')
      const started = await writer.waitFor('started')
      t.equal(started.from, highestSeen, 'the writer continues from the last state on disk')
      await writer.waitFor('acked')
      await new Promise(resolve => setTimeout(resolve, delayMs))
      writer.process.kill('SIGKILL')
      t.same(await writer.closed, { code: null, signal: 'SIGKILL' }, 'killed, not exited')
      const acked = writer.lastAcked()

      // The killed process could not release its lock; removing the lock
      // directory stands in for waiting out its 5 s stale window (proven above).
      await rm(lockDir, { recursive: true, force: true })

      // Before the store is reopened (and tidies up), every record file is whole JSON.
      const before = await storeEntries(dataDir)
      const tempFiles = Object.values(before).flat().filter(name => !name.endsWith('.json'))
      if (tempFiles.length > 0) roundsWithTempFile++
      for (const dir of STORE_DIRS) {
        for (const name of before[dir]!.filter(entry => entry.endsWith('.json'))) {
          const text = await readFile(join(dataDir, 'store', dir, name), 'utf8')
          t.doesNotThrow(() => JSON.parse(text), `${dir}/${name} parses`)
        }
      }
      t.equal(before.instances!.filter(name => name.endsWith('.json')).length, 1, 'one instance record')
      t.equal(before.sessions!.filter(name => name.endsWith('.json')).length, 1, 'one session file')
      const instanceFile = before.instances!.find(name => name.endsWith('.json'))!
      instanceId ??= instanceFile.slice(0, -'.json'.length)
      t.equal(instanceFile, `${instanceId}.json`, 'the same instance every round')

      const session = JSON.parse(await readFile(join(dataDir, 'store', 'sessions', `${instanceId}.json`), 'utf8')) as { creds: string, keys: Record<string, string> }
      const counter = (JSON.parse(session.creds) as { counter: number }).counter
      t.ok(counter === acked || counter === acked + 1, `the file holds round ${counter}: every acknowledged round (${acked}) is kept, at most the one in flight is missing`)
      t.equal(session.keys.marker, String(counter), 'creds and keys are in step')
      t.ok(session.keys.blob === blobFor(counter), 'the large key is whole and of the same round')
      const { blob: _blob, ...smallKeys } = session.keys
      t.same(smallKeys, expectedKeys(counter), 'the session is exactly the state after that round')

      const instance = JSON.parse(await readFile(join(dataDir, 'store', 'instances', instanceFile), 'utf8')) as InstanceRecord
      t.same(Object.keys(instance).sort(), INSTANCE_FIELDS, 'the instance record is complete')
      t.match(instance, {
        id: instanceId,
        accountId: 'writer-account',
        name: 'torture',
        tokenHash: String,
        connection: { state: 'disconnected', detail: null, numberJid: null },
        proxy: null,
        webhooks: []
      }, 'the fields the writer never changes are intact')
      const instanceRound = Number(/^n-(\d+)$/.exec(instance.profile.name ?? '')?.[1])
      t.ok(instanceRound === acked || instanceRound === acked + 1, `the instance holds round ${instanceRound}: the acknowledged update (${acked}) is kept`)
      t.equal(instance.desired, instanceRound % 2 === 0 ? 'online' : 'offline', 'fields of one update are in step')
      t.equal(instance.profile.isBusiness, instanceRound % 3 === 0, 'nested fields of one update are in step')
      t.ok(counter >= highestSeen && instanceRound >= highestSeen, 'nothing went back in time')
      highestSeen = counter

      // Reopening through the store reads the same state and removes stray temp files.
      const store = await openFileStore({ dataDir, lockWaitMs: 0 })
      t.equal(await store.readSessionCreds(instanceId), session.creds, 'the reopened store reads the same creds')
      t.same(Object.fromEntries(await store.readSessionKeys(instanceId, ['marker'])), { marker: String(counter) }, 'and the same keys')
      t.same(await store.getInstance(instanceId), instance, 'and the same instance')
      const after = await storeEntries(dataDir)
      t.same(Object.values(after).flat().filter(name => !name.endsWith('.json')), [], 'no temp files remain after reopening')
      await store.close()
    })
  }

  t.comment(`${roundsWithTempFile} of ${ROUNDS} kills left a temp file behind, i.e. landed mid-write`)
  t.ok(roundsWithTempFile > 0, 'at least one kill landed while a file was being written')
  for (const spare of pool) spare.process.kill('SIGKILL')
})
