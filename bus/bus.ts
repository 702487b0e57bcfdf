import type { InstanceStateEvent } from './events.js'

export type EventListener = (event: InstanceStateEvent) => void

/**
 * The internal event port. The embedded bus reaches this process only; the
 * Redis bus reaches every replica on the same Redis. Per instance, listeners
 * see events in publish order on both.
 */
export interface EventBus {
  readonly kind: 'embedded' | 'redis'
  publish: (event: InstanceStateEvent) => Promise<void>
  subscribe: (listener: EventListener) => () => void
  close: () => Promise<void>
}
