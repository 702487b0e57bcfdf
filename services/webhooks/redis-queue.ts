import { type Job, Queue, Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import { redisInstanceKey } from '../../stores/redis-store.js'
import { backoffDelay } from '../backoff.js'
import type { DeadLetter, Delivery } from './delivery.js'
import { DEFAULT_DEAD_LETTER_LIMIT, nextStep, type QueueSettings, targetOf, type WebhookQueue } from './queue.js'

interface DeliverJob {
  target: string
  deliveryId: string
}

// Each target's outbox is a Redis list, delivered head first. A BullMQ job
// exists for the head only, so a delivery being retried holds back the ones
// behind it (order per target), and BullMQ brings the retries back after a
// restart or on another replica when this one dies. The head is removed by a
// script that checks it is still the delivery just attempted, so a stale or
// repeated job can never drop a different delivery.

// KEYS: pending list. ARGV: id of the delivery just delivered. Returns the new head, if any.
const POP_IF_HEAD = `
local head = redis.call('LINDEX', KEYS[1], 0)
if head and cjson.decode(head).id == ARGV[1] then redis.call('LPOP', KEYS[1]) end
return redis.call('LINDEX', KEYS[1], 0)
`

// KEYS: pending list, dead-letter list, the instance's record. ARGV: id, dead letter JSON,
// dead-letter limit. A deleted instance keeps no dead letters: nobody could read them.
const DEAD_IF_HEAD = `
local head = redis.call('LINDEX', KEYS[1], 0)
if head and cjson.decode(head).id == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[2])
    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  end
end
return redis.call('LINDEX', KEYS[1], 0)
`

type ScriptedRedis = Redis & {
  waPopIfHead: (key: string, id: string) => Promise<string | null>
  waDeadIfHead: (pending: string, dead: string, instance: string, id: string, letter: string, limit: number) => Promise<string | null>
}

/** A key prefix as a SCAN pattern that matches it literally. */
const globEscaped = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&')

export interface RedisQueueOptions extends QueueSettings {
  redis: Redis
  prefix: string
  concurrency?: number
  onError?: (error: Error) => void
}

export async function openRedisWebhookQueue (options: RedisQueueOptions): Promise<WebhookQueue> {
  const { prefix, maxAttempts } = options
  const deadLetterLimit = options.deadLetterLimit ?? DEFAULT_DEAD_LETTER_LIMIT
  // BullMQ's blocking reads need a connection that retries forever.
  const connection = options.redis.duplicate({ maxRetriesPerRequest: null }) as ScriptedRedis
  connection.defineCommand('waPopIfHead', { numberOfKeys: 1, lua: POP_IF_HEAD })
  connection.defineCommand('waDeadIfHead', { numberOfKeys: 3, lua: DEAD_IF_HEAD })

  const key = {
    pending: (target: string) => `${prefix}webhook:pending:${target}`,
    dead: (instanceId: string) => `${prefix}webhook:dead:${instanceId}`,
    instance: (instanceId: string) => redisInstanceKey(prefix, instanceId)
  }
  const bullPrefix = `${prefix}bull`
  const queue = new Queue<DeliverJob>('webhooks', { connection, prefix: bullPrefix })

  async function scheduleHead (target: string, head: string | null): Promise<void> {
    if (head === null) return
    const deliveryId = (JSON.parse(head) as Delivery).id
    // The job id makes scheduling idempotent: one job per head, however often this runs.
    await queue.add('deliver', { target, deliveryId }, {
      jobId: `${target}~${deliveryId}`,
      attempts: maxAttempts,
      backoff: { type: 'webhook' },
      removeOnComplete: true,
      removeOnFail: true
    })
  }

  async function process (job: Job<DeliverJob>): Promise<void> {
    const { target, deliveryId } = job.data
    const raw = await connection.lindex(key.pending(target), 0)
    if (raw === null) return
    const head = JSON.parse(raw) as Delivery
    if (head.id !== deliveryId) return
    const attempt = job.attemptsMade + 1
    const outcome = await options.deliver(head)
    options.onOutcome?.(head, outcome, attempt)
    const step = nextStep(outcome, attempt, maxAttempts)
    if (step === 'retry') throw new Error(outcome.kind === 'delivered' ? 'retry' : outcome.error)
    const next = step === 'done'
      ? await connection.waPopIfHead(key.pending(target), head.id)
      : await connection.waDeadIfHead(key.pending(target), key.dead(head.instanceId), key.instance(head.instanceId), head.id, JSON.stringify({
        ...head,
        attempts: attempt,
        lastError: outcome.kind === 'delivered' ? null : outcome.error,
        failedAt: new Date().toISOString()
      } satisfies DeadLetter), deadLetterLimit)
    await scheduleHead(target, next)
  }

  const worker = new Worker<DeliverJob>('webhooks', process, {
    connection,
    prefix: bullPrefix,
    concurrency: options.concurrency ?? 50,
    settings: { backoffStrategy: (attemptsMade: number) => backoffDelay(attemptsMade, options.backoff) }
  })
  worker.on('error', (error: Error) => { options.onError?.(error) })
  await worker.waitUntilReady()

  /** What follows `keyPrefix` in every key under it. */
  async function * suffixesUnder (keyPrefix: string): AsyncGenerator<string> {
    const batches = connection.scanStream({ match: `${globEscaped(keyPrefix)}*`, count: 1000 }) as AsyncIterable<string[]>
    for await (const keys of batches) for (const found of keys) yield found.slice(keyPrefix.length)
  }

  // What a process that stopped at the wrong moment left behind: an outbox
  // whose head got no job (it stopped between the push and the scheduling),
  // dead letters of an instance it deleted but had not forgotten yet.
  // Both steps are idempotent, so replicas starting together do no harm.
  for await (const target of suffixesUnder(key.pending(''))) await scheduleHead(target, await connection.lindex(key.pending(target), 0))
  for await (const instanceId of suffixesUnder(key.dead(''))) {
    if (!await options.instanceExists(instanceId)) await connection.del(key.dead(instanceId))
  }

  return {
    async enqueue (deliveries) {
      if (deliveries.length === 0) return
      const transaction = connection.multi()
      for (const delivery of deliveries) {
        transaction.rpush(key.pending(targetOf(delivery)), JSON.stringify(delivery))
      }
      await transaction.exec()
      for (const target of new Set(deliveries.map(targetOf))) {
        await scheduleHead(target, await connection.lindex(key.pending(target), 0))
      }
    },

    async deadLetters (instanceId) {
      return (await connection.lrange(key.dead(instanceId), 0, -1)).map(raw => JSON.parse(raw) as DeadLetter)
    },

    async forget (instanceId) {
      // Called once the instance's record is gone, so no letter of it is added after this.
      await connection.del(key.dead(instanceId))
    },


    async close () {
      await worker.close()
      await queue.close()
      await connection.quit()
    }
  }
}
