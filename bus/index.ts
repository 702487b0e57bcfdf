import type { Redis } from 'ioredis'
import type { EventBus } from './bus.js'
import { createEmbeddedBus } from './embedded-bus.js'
import { createRedisBus } from './redis-bus.js'

export type { EventBus } from './bus.js'

/** The one place that decides how events travel: in process, or through Redis to every replica. */
export async function openEventBus ({ redis, prefix }: { redis: Redis | null, prefix: string }): Promise<EventBus> {
  return redis === null ? createEmbeddedBus() : await createRedisBus({ redis, prefix })
}
