import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { InstanceStateEvent } from '../../bus/events.js'
import { sightings } from './sightings.js'

export interface EventRecorder {
  events: InstanceStateEvent[]
  /** Resolves with the first recorded event (past or future) matching, at or after `from`. */
  waitFor: (match: (event: InstanceStateEvent) => boolean, options?: { timeoutMs?: number, from?: number }) => Promise<InstanceStateEvent>
  /** The index the next event will have: pass it as `from` to wait only for later events. */
  mark: () => number
}

/** Records every instance.state event the app publishes on its bus. */
export function recordEvents (t: Test, app: FastifyInstance): EventRecorder {
  const seen = sightings<InstanceStateEvent>(event => `${event.instance}:${event.state}/${event.detail}`)
  t.teardown(app.bus.subscribe(seen.add))
  return { events: seen.items, waitFor: seen.waitFor, mark: () => seen.items.length }
}
