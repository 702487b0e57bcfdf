import type { BackoffOptions } from '../backoff.js'
import type { DeadLetter, Delivery, DeliveryOutcome } from './delivery.js'

/**
 * The delivery port: a durable outbox per webhook target (instance + label),
 * delivered strictly in order, each delivery retried until it succeeds or runs
 * out of attempts and becomes a dead letter. Embedded: files in DATA_DIR and
 * timers (file-queue.ts). Redis: lists plus BullMQ jobs, so pending deliveries
 * survive restarts and a dead replica's work is picked up (redis-queue.ts).
 */
export interface WebhookQueue {
  /** Resolves once the deliveries are durable. */
  enqueue: (deliveries: Delivery[]) => Promise<void>
  deadLetters: (instanceId: string) => Promise<DeadLetter[]>
  /**
   * Called once the instance is deleted: its dead letters go now (nobody can
   * read them any more), a delivery of it that fails for good from now on
   * leaves none, and its outboxes go once their pending deliveries, its last
   * event included, are out.
   */
  forget: (instanceId: string) => Promise<void>
  close: () => Promise<void>
}

export interface QueueSettings {
  deliver: (delivery: Delivery) => Promise<DeliveryOutcome>
  /** Whether the instance still exists: at start, leftovers of deleted instances are forgotten. */
  instanceExists: (instanceId: string) => Promise<boolean>
  maxAttempts: number
  backoff: BackoffOptions
  /** Dead letters kept per target, newest first. */
  deadLetterLimit?: number
  onOutcome?: (delivery: Delivery, outcome: DeliveryOutcome, attempt: number) => void
}

export const DEFAULT_DEAD_LETTER_LIMIT = 100

/** What happens to the head of a target's outbox after one attempt. */
export function nextStep (outcome: DeliveryOutcome, attempt: number, maxAttempts: number): 'done' | 'retry' | 'dead' {
  if (outcome.kind === 'delivered') return 'done'
  if (outcome.kind === 'retry' && attempt < maxAttempts) return 'retry'
  return 'dead'
}

export const targetOf = (delivery: Pick<Delivery, 'instanceId' | 'label'>): string => `${delivery.instanceId}~${delivery.label}`
