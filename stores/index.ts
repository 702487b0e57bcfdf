import type { Redis } from 'ioredis'
import { openFileStore } from './file-store.js'
import { createRedisStore } from './redis-store.js'
import type { Store } from './store.js'

export type { Store } from './store.js'

export interface StoreSelection {
  dataDir: string
  /** Present exactly when REDIS_URL is set. */
  redis: Redis | null
  redisPrefix?: string
}

/** The one place that decides which backend holds the data. */
export async function openStore (selection: StoreSelection): Promise<Store> {
  if (selection.redis !== null) return createRedisStore({ redis: selection.redis, prefix: selection.redisPrefix })
  return await openFileStore({ dataDir: selection.dataDir })
}
