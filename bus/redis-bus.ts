import type { Redis } from 'ioredis'
import type { EventBus, EventListener } from './bus.js'
import type { InstanceStateEvent } from './events.js'

/**
 * Redis pub/sub on one channel. A single channel keeps every instance's events
 * in publish order for every subscriber; a subscribing connection cannot run
 * other commands, so the bus holds its own duplicate of the shared client.
 */
export async function createRedisBus ({ redis, prefix }: { redis: Redis, prefix: string }): Promise<EventBus> {
  const channel = `${prefix}events`
  const subscriber = redis.duplicate()
  const listeners = new Set<EventListener>()
  subscriber.on('message', (_channel: string, message: string) => {
    const event = JSON.parse(message) as InstanceStateEvent
    for (const listener of listeners) listener(event)
  })
  await subscriber.subscribe(channel)

  return {
    kind: 'redis',
    async publish (event) {
      await redis.publish(channel, JSON.stringify(event))
    },
    subscribe (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    async close () {
      listeners.clear()
      await subscriber.quit()
    }
  }
}
