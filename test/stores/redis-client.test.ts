import type { Socket } from 'node:net'
import t from 'tap'
import { createRedisClient } from '../../stores/redis-client.js'
import { useRedis } from '../support/redis.js'

/** Counts the socket's writes as Node hands them to the system: one call of `_write` or `_writev` each. */
function countWrites (socket: Socket): () => number {
  let writes = 0
  const internals = socket as unknown as { _write: (...args: unknown[]) => void, _writev: (...args: unknown[]) => void }
  for (const method of ['_write', '_writev'] as const) {
    const original = internals[method].bind(socket)
    internals[method] = (...args: unknown[]) => { writes++; original(...args) }
  }
  return () => writes
}

t.test('the Redis client', async t => {
  const redis = await useRedis(t)
  if (redis === null) return
  const prefix = redis.prefix()
  const client = createRedisClient(redis.url, { lazyConnect: true })
  t.teardown(async () => { await client.quit() })
  await client.connect()
  const writes = countWrites(client.stream as Socket)

  t.test('sends every command of one turn of the event loop in a single write, answers each in order', async t => {
    const before = writes()
    const replies = await Promise.all(Array.from({ length: 20 }, async (_, i) => await client.set(`${prefix}k${i}`, `v${i}`).then(async () => await client.get(`${prefix}k${i}`))))
    t.same(replies, Array.from({ length: 20 }, (_, i) => `v${i}`))
    // The 20 SETs in one write, then the 20 GETs their replies started, in one write of a later turn.
    t.equal(writes() - before, 2)
  })

  t.test('a command that waits for another reply goes out in a write of its own', async t => {
    const before = writes()
    t.equal(await client.incr(`${prefix}n`), 1)
    t.equal(await client.incr(`${prefix}n`), 2)
    t.equal(writes() - before, 2)
  })

  t.test('pipelines and transactions still write as one batch', async t => {
    const before = writes()
    const results = await client.multi().incr(`${prefix}m`).incr(`${prefix}m`).exec()
    t.same(results, [[null, 1], [null, 2]])
    t.equal(writes() - before, 1)
  })

  t.test('commands still corked when the connection drops are sent again once it is back', async t => {
    const dropped = createRedisClient(redis.url, { lazyConnect: true })
    t.teardown(async () => { await dropped.quit() })
    await dropped.connect()
    const replies = Promise.all([dropped.set(`${prefix}d`, 'kept'), dropped.get(`${prefix}d`)])
    // Same turn: the commands sit in the corked socket, unsent.
    dropped.stream.destroy()
    t.same(await replies, ['OK', 'kept'])
  })

  t.test('a command sent before the connection is up waits for it, as ioredis does', async t => {
    const late = createRedisClient(redis.url, { lazyConnect: true })
    t.teardown(async () => { await late.quit() })
    t.equal(await late.ping(), 'PONG')
  })
})
