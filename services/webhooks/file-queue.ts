import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import writeFileAtomic from 'write-file-atomic'
import { backoffDelay } from '../backoff.js'
import type { DeadLetter, Delivery } from './delivery.js'
import { DEFAULT_DEAD_LETTER_LIMIT, nextStep, type QueueSettings, targetOf, type WebhookQueue } from './queue.js'

interface Target {
  key: string
  instanceId: string
  pending: Delivery[]
  dead: DeadLetter[]
  draining: boolean
  timer: NodeJS.Timeout | null
  /** Writes of this target's file, in order. */
  saving: Promise<void>
  /** Its instance is deleted: it keeps no dead letters, and goes once its outbox is empty. */
  forgotten: boolean
}

const SUFFIX = '.json'

/**
 * The embedded webhook queue: each target's outbox and dead letters are one
 * JSON file in DATA_DIR/webhooks, replaced atomically after every change, and
 * drained in process. Pending deliveries survive a restart.
 */
export async function openFileWebhookQueue (dir: string, settings: QueueSettings): Promise<WebhookQueue> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const targets = new Map<string, Target>()
  const inFlight = new Set<Promise<void>>()
  const deadLetterLimit = settings.deadLetterLimit ?? DEFAULT_DEAD_LETTER_LIMIT
  let closed = false

  const targetsOf = (instanceId: string): Target[] => [...targets.values()].filter(target => target.instanceId === instanceId)

  function targetFor (key: string, instanceId: string): Target {
    let target = targets.get(key)
    if (target === undefined) {
      target = { key, instanceId, pending: [], dead: [], draining: false, timer: null, saving: Promise.resolve(), forgotten: false }
      targets.set(key, target)
    }
    return target
  }

  function save (target: Target): Promise<void> {
    const content = JSON.stringify({ pending: target.pending, dead: target.dead, forgotten: target.forgotten })
    const write = target.saving.then(async () => {
      await writeFileAtomic(join(dir, target.key + SUFFIX), content, { mode: 0o600 })
    })
    // The next write waits for this one, failed or not; the caller still sees a failure.
    target.saving = write.catch(() => {})
    return write
  }

  /** A forgotten target with an empty outbox leaves memory now and its file after the writes queued before. */
  function discardIfDone (target: Target): Promise<void> {
    if (!target.forgotten || target.pending.length > 0 || targets.get(target.key) !== target) return Promise.resolve()
    targets.delete(target.key)
    const removal = target.saving.then(async () => { await rm(join(dir, target.key + SUFFIX), { force: true }) })
    target.saving = removal.catch(() => {})
    return removal
  }

  async function forget (instanceId: string): Promise<void> {
    await Promise.all(targetsOf(instanceId).map(async target => {
      target.forgotten = true
      target.dead = []
      // An outbox still delivering is discarded by its drain, once empty.
      await (target.pending.length === 0 && !target.draining ? discardIfDone(target) : save(target))
    }))
  }

  function drain (target: Target): void {
    if (target.draining || closed) return
    target.draining = true
    const run = (async () => {
      while (!closed) {
        const head = target.pending[0]
        if (head === undefined) break
        const attempt = head.attempts + 1
        const outcome = await settings.deliver(head)
        settings.onOutcome?.(head, outcome, attempt)
        const step = nextStep(outcome, attempt, settings.maxAttempts)
        if (step === 'done') {
          target.pending.shift()
        } else if (step === 'dead') {
          target.pending.shift()
          if (!target.forgotten) {
            target.dead.unshift({ ...head, attempts: attempt, lastError: outcome.kind === 'delivered' ? null : outcome.error, failedAt: new Date().toISOString() })
            target.dead.length = Math.min(target.dead.length, deadLetterLimit)
          }
        } else {
          head.attempts = attempt
          head.lastError = outcome.kind === 'delivered' ? null : outcome.error
          await save(target)
          target.timer = setTimeout(() => { target.timer = null; target.draining = false; drain(target) }, backoffDelay(attempt, settings.backoff))
          return
        }
        await save(target)
      }
      target.draining = false
      if (!closed) await discardIfDone(target)
    })()
    inFlight.add(run)
    void run.finally(() => { inFlight.delete(run) })
  }

  for (const entry of await readdir(dir)) {
    if (!entry.endsWith(SUFFIX)) {
      await rm(join(dir, entry), { force: true })
      continue
    }
    const key = entry.slice(0, -SUFFIX.length)
    const saved = JSON.parse(await readFile(join(dir, entry), 'utf8')) as { pending: Delivery[], dead: DeadLetter[], forgotten?: boolean }
    const target = targetFor(key, key.split('~')[0] ?? '')
    target.pending = saved.pending
    target.dead = saved.dead
    target.forgotten = saved.forgotten === true
    drain(target)
  }
  // A process that stopped between deleting an instance and forgetting it left its targets behind.
  const remembered = new Set([...targets.values()].filter(target => !target.forgotten).map(target => target.instanceId))
  for (const instanceId of remembered) {
    if (!await settings.instanceExists(instanceId)) await forget(instanceId)
  }

  return {
    async enqueue (deliveries) {
      const touched = new Set<Target>()
      for (const delivery of deliveries) {
        const target = targetFor(targetOf(delivery), delivery.instanceId)
        target.pending.push(delivery)
        touched.add(target)
      }
      await Promise.all([...touched].map(save))
      for (const target of touched) drain(target)
    },

    async deadLetters (instanceId) {
      return targetsOf(instanceId).flatMap(target => target.dead)
    },

    forget,

    async close () {
      closed = true
      for (const target of targets.values()) if (target.timer !== null) clearTimeout(target.timer)
      await Promise.allSettled([...inFlight])
      await Promise.allSettled([...targets.values()].map(async target => { await target.saving }))
    }
  }
}
