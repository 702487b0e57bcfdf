import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { InstanceStateEvent } from '../../bus/events.js'

export interface EventRecorder {
  events: InstanceStateEvent[]
  /** Resolves with the first recorded event (past or future) matching, after `from`. */
  waitFor: (match: (event: InstanceStateEvent) => boolean, options?: { timeoutMs?: number, from?: number }) => Promise<InstanceStateEvent>
  /** The index the next event will have: pass it as `from` to wait only for later events. */
  mark: () => number
}

/** Records every instance.state event the app publishes on its bus. */
export function recordEvents (t: Test, app: FastifyInstance): EventRecorder {
  const events: InstanceStateEvent[] = []
  const waiters = new Set<() => void>()
  const unsubscribe = app.bus.subscribe(event => {
    events.push(event)
    for (const wake of waiters) wake()
  })
  t.teardown(unsubscribe)
  return {
    events,
    mark: () => events.length,
    async waitFor (match, { timeoutMs = 10_000, from = 0 } = {}) {
      return await new Promise((resolve, reject) => {
        const check = (): void => {
          const found = events.slice(from).find(match)
          if (found === undefined) return
          done()
          resolve(found)
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`no matching event within ${timeoutMs} ms; saw ${JSON.stringify(events.slice(from).map(e => `${e.instance}:${e.state}/${e.detail}`))}`))
        }, timeoutMs)
        const done = (): void => { clearTimeout(timer); waiters.delete(check) }
        waiters.add(check)
        check()
      })
    }
  }
}
