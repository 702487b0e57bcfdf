import type { EventBus, EventListener } from './bus.js'

export function createEmbeddedBus (): EventBus {
  const listeners = new Set<EventListener>()
  return {
    kind: 'embedded',
    async publish (event) {
      for (const listener of listeners) listener(event)
    },
    subscribe (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    async close () {
      listeners.clear()
    }
  }
}
