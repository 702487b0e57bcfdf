/** Things seen so far (events, frames…), and a way to wait for one that is yet to come. */
export interface Sightings<T> {
  items: T[]
  add: (item: T) => void
  /** Resolves with the first item (past or future) matching, at or after index `from`. */
  waitFor: (match: (item: T) => boolean, options?: { timeoutMs?: number, from?: number }) => Promise<T>
}

export function sightings<T> (describe: (item: T) => string): Sightings<T> {
  const items: T[] = []
  const waiters = new Set<() => void>()
  return {
    items,
    add (item) {
      items.push(item)
      for (const wake of waiters) wake()
    },
    async waitFor (match, { timeoutMs = 10_000, from = 0 } = {}) {
      return await new Promise((resolve, reject) => {
        const check = (): void => {
          const found = items.slice(from).find(match)
          if (found === undefined) return
          done()
          resolve(found)
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`nothing matching within ${timeoutMs} ms; saw ${JSON.stringify(items.slice(from).map(describe))}`))
        }, timeoutMs)
        const done = (): void => { clearTimeout(timer); waiters.delete(check) }
        waiters.add(check)
        check()
      })
    }
  }
}
