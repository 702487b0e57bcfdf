import type { Test } from 'tap'
import { useRedis } from './redis.js'

export interface Backend {
  name: 'file' | 'redis'
  /** Settings that select the backend; a fresh Redis prefix per call keeps tests apart. */
  env: () => Record<string, string>
}

/** The embedded file store always; Redis too when a real one is available (see useRedis). */
export async function backends (t: Test): Promise<Backend[]> {
  const list: Backend[] = [{ name: 'file', env: () => ({}) }]
  const redis = await useRedis(t)
  if (redis !== null) list.push({ name: 'redis', env: () => ({ REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix() }) })
  return list
}
