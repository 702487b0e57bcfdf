import asyncHooks, { AsyncLocalStorage } from 'node:async_hooks'
import { syncBuiltinESMExports } from 'node:module'

/**
 * Keeps Baileys' per-socket AsyncLocalStorage from slowing down and bloating
 * the whole process.
 *
 * Every Baileys socket creates its own AsyncLocalStorage for its key-store
 * transactions (addTransactionCapability) and never disables it
 * (WhiskeySockets/Baileys#2806). On Node 20 an enabled storage stays in a
 * process-wide list for good, and every async resource created afterwards (each
 * promise, timer, socket) gets one slot per listed storage: the cost of every
 * `await` grows with the number of sockets the process ever opened, and idle
 * connected instances cost memory in proportion to their own number (measured
 * in bench/sessions.ts: 0.57 MiB per connected instance at 500 instead of 0.34
 * at 100, and a fifth of the CPU of a reconnect spent in that list).
 *
 * Sharing one storage between sockets would fix the cost but not safely: a
 * socket whose work runs in the async context of another socket's transaction
 * would read and commit into that transaction. Instead, each storage created
 * while a socket is being made is enabled only while one of its transactions
 * runs: it is disabled when the last running one settles, and enabled again by
 * the next. Inside a transaction nothing changes. A detached promise that
 * outlives its transaction sees no transaction (and writes through to the
 * store) where it would otherwise have written into one already committed.
 */
class TransactionScopedStorage<T> extends AsyncLocalStorage<T> {
  readonly #scoped = capturing
  #running = 0

  override run<R, TArgs extends unknown[]>(store: T, callback: (...args: TArgs) => R, ...args: TArgs): R {
    if (!this.#scoped) return super.run(store, callback, ...args)
    this.#running++
    let result: R
    try {
      result = super.run(store, callback, ...args)
    } catch (error) {
      this.#settled()
      throw error
    }
    if (!isThenable(result)) {
      this.#settled()
      return result
    }
    return Promise.resolve(result).finally(() => { this.#settled() }) as R
  }

  #settled (): void {
    this.#running--
    if (this.#running === 0) this.disable()
  }
}

let capturing = false

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as PromiseLike<unknown> | null)?.then === 'function'

/** Makes `new AsyncLocalStorage()` build a TransactionScopedStorage, in CommonJS and ESM importers alike. */
function install (): void {
  const exports = asyncHooks as { AsyncLocalStorage: typeof AsyncLocalStorage }
  if (exports.AsyncLocalStorage === TransactionScopedStorage) return
  exports.AsyncLocalStorage = TransactionScopedStorage
  syncBuiltinESMExports()
}

/**
 * Runs `makeSocket` (synchronous, like Baileys' makeWASocket) so that the
 * AsyncLocalStorages it creates are enabled only while they are in use.
 * Storages created anywhere else behave exactly as Node's own.
 */
export function withTransactionScopedStorage<S> (makeSocket: () => S): S {
  install()
  capturing = true
  try {
    return makeSocket()
  } finally {
    capturing = false
  }
}
