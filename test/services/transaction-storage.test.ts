import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
import t from 'tap'
import { withTransactionScopedStorage } from '../../services/sessions/transaction-storage.js'
import { call } from '../support/app.js'
import { connectedInstance, fakeWhatsApp, trustLocalWhatsApp } from '../support/whatsapp.js'

trustLocalWhatsApp(t)

/**
 * How many AsyncLocalStorages Node currently propagates: on Node 20 each
 * enabled one puts a `kResourceStore` slot on every new async resource.
 */
function enabledStorages (): number {
  return Object.getOwnPropertySymbols(new AsyncResource('probe')).filter(symbol => symbol.description === 'kResourceStore').length
}

const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

t.test('a storage made with a socket is enabled only while one of its runs is in progress', async t => {
  const before = enabledStorages()
  const storage = withTransactionScopedStorage(() => new AsyncLocalStorage<string>())

  const seen = await storage.run('tx-1', async () => {
    t.equal(enabledStorages(), before + 1, 'enabled while running')
    await tick()
    return storage.getStore()
  })
  t.equal(seen, 'tx-1', 'the store survives awaits inside the run')
  t.equal(enabledStorages(), before, 'disabled once the run settled')
  t.equal(storage.getStore(), undefined)

  t.equal(await storage.run('tx-2', async () => { await tick(); return storage.getStore() }), 'tx-2', 'the next run enables it again')
  t.equal(enabledStorages(), before)
})

t.test('concurrent runs each keep their own store; the storage stays enabled until the last one settles', async t => {
  const before = enabledStorages()
  const storage = withTransactionScopedStorage(() => new AsyncLocalStorage<string>())
  let releaseSlow!: () => void
  const slowGate = new Promise<void>(resolve => { releaseSlow = resolve })

  const slow = storage.run('slow', async () => { await slowGate; return storage.getStore() })
  t.equal(await storage.run('fast', async () => { await tick(); return storage.getStore() }), 'fast')
  t.equal(enabledStorages(), before + 1, 'still enabled: the slow run is in progress')
  releaseSlow()
  t.equal(await slow, 'slow')
  t.equal(enabledStorages(), before)
})

t.test('a run that throws or rejects still releases the storage and passes the error on', async t => {
  const before = enabledStorages()
  const storage = withTransactionScopedStorage(() => new AsyncLocalStorage<string>())
  t.throws(() => storage.run('sync', () => { throw new Error('sync failure') }), { message: 'sync failure' })
  await t.rejects(storage.run('async', async () => { await tick(); throw new Error('async failure') }), { message: 'async failure' })
  t.equal(storage.run('plain', () => storage.getStore()), 'plain', 'a synchronous run returns its value')
  t.equal(enabledStorages(), before)
})

t.test('storages made anywhere else behave as Node\'s own: enabled from their first run on', async t => {
  withTransactionScopedStorage(() => null)
  const before = enabledStorages()
  const storage = new AsyncLocalStorage<string>()
  await storage.run('kept', async () => { await tick() })
  t.equal(enabledStorages(), before + 1)
  storage.disable()
})

t.test('real Baileys sockets: replacing the socket again and again leaves no storage behind', async t => {
  const server = await fakeWhatsApp(t)
  const { service, events, instanceToken } = await connectedInstance(t, server)
  const idle = enabledStorages()
  for (let round = 0; round < 5; round++) {
    const from = events.mark()
    const reply = await call(service.url, 'POST', '/api/instance/reconnect/sales', { token: instanceToken })
    t.equal(reply.status, 200)
    await events.waitFor(e => e.state === 'connected', { from })
  }
  // Let the logins' own transactions (pre-key checks and the like) finish.
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(enabledStorages(), idle, `after 5 more sockets, still ${idle} enabled storages`)
})
