import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { openFileStore } from '../../stores/file-store.js'
import { createRedisStore } from '../../stores/redis-store.js'
import type { Store } from '../../stores/store.js'
import { accountRecord, instanceRecord } from '../support/records.js'
import { useRedis } from '../support/redis.js'

/** Opens a store; calling it again opens the same data anew, as a restarted process would. */
type Backend = (t: Test) => Promise<() => Promise<Store>>

const fileBackend: Backend = async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'wa-store-'))
  let open: Store | null = null
  t.teardown(async () => { await open?.close() })
  return async () => {
    await open?.close()
    open = await openFileStore({ dataDir, lockWaitMs: 0 })
    return open
  }
}

async function redisBackend (t: Test): Promise<Backend | null> {
  const redis = await useRedis(t)
  if (redis === null) return null
  return async (t) => {
    const prefix = redis.prefix()
    return async () => createRedisStore({ redis: redis.client(), prefix })
  }
}

function conformance (name: string, backend: Backend): void {
  t.test(`${name} store`, async t => {
    t.test('a setting is kept by its first writer, for good, and survives a restart', async t => {
      const open = await backend(t)
      const store = await open()
      const claims = await Promise.all(['a', 'b', 'c'].map(async value => await store.claimSetting('shared', value)))
      t.equal(new Set(claims).size, 1, 'concurrent claims agree on one value')
      t.equal(await store.claimSetting('shared', 'later'), claims[0])
      t.equal(await (await open()).claimSetting('shared', 'after-restart'), claims[0])
    })

    t.test('accounts are found by token hash and listed', async t => {
      const store = await (await backend(t))()
      const account = accountRecord()
      await store.createAccount(account)
      t.same(await store.findTokenOwner(account.tokenHash), { kind: 'account', accountId: account.id })
      t.equal(await store.findTokenOwner('unknown'), null)
      t.same(await store.listAccounts(), [account])
    })

    t.test('instance names are unique per account, tokens unique overall, quota enforced', async t => {
      const store = await (await backend(t))()
      const a = accountRecord()
      const b = accountRecord()
      const sales = instanceRecord(a.id, 'sales')
      t.equal(await store.createInstance(sales, 2), 'created')
      t.equal(await store.createInstance(instanceRecord(a.id, 'sales'), 2), 'name_taken')
      t.equal(await store.createInstance(instanceRecord(b.id, 'sales'), 2), 'created', 'another account may reuse the name')
      t.equal(await store.createInstance(instanceRecord(a.id, 'other', { tokenHash: sales.tokenHash }), 2), 'token_taken')
      t.equal(await store.createInstance(instanceRecord(a.id, 'support'), 2), 'created')
      t.equal(await store.createInstance(instanceRecord(a.id, 'third'), 2), 'quota_exceeded')
      t.same(await store.findTokenOwner(sales.tokenHash), { kind: 'instance', accountId: a.id, instanceId: sales.id, instanceName: 'sales' })
      t.same(await store.findInstanceByName(a.id, 'sales'), sales)
      t.equal(await store.findInstanceByName(b.id, 'support'), null)
      t.same((await store.listInstances(a.id)).map(i => i.name).sort(), ['sales', 'support'])
      t.equal((await store.listAllInstances()).length, 3)
    })

    t.test('concurrent creates of one name: exactly one wins', async t => {
      const store = await (await backend(t))()
      const account = accountRecord()
      const results = await Promise.all(Array.from({ length: 10 }, async () => await store.createInstance(instanceRecord(account.id, 'race'), 100)))
      t.equal(results.filter(result => result === 'created').length, 1)
      t.equal(results.filter(result => result === 'name_taken').length, 9)
    })

    t.test('updates patch the record and never recreate a deleted one', async t => {
      const store = await (await backend(t))()
      const instance = instanceRecord('acc', 'sales')
      await store.createInstance(instance, 10)
      const updated = await store.updateInstance(instance.id, { desired: 'online', connection: { ...instance.connection, state: 'connecting', detail: 'reconnect_requested' } })
      t.equal(updated?.desired, 'online')
      t.equal(updated?.connection.state, 'connecting')
      t.equal(updated?.name, 'sales')
      t.equal(updated?.seq, 0, 'the event counter moves only when asked')
      t.same(await store.getInstance(instance.id), updated)
      const numbered = await Promise.all([1, 2, 3].map(async () => await store.updateInstance(instance.id, { desired: 'online' }, { nextSeq: true })))
      t.same(numbered.map(record => record?.seq).sort(), [1, 2, 3], 'each numbered change gets its own number, even concurrently')
      t.ok(await store.deleteInstance(instance.id))
      t.equal(await store.updateInstance(instance.id, { desired: 'offline' }), null)
      t.equal(await store.getInstance(instance.id), null)
      t.equal(await store.findTokenOwner(instance.tokenHash), null)
      t.equal(await store.findInstanceByName('acc', 'sales'), null)
      t.notOk(await store.deleteInstance(instance.id))
    })

    t.test('instance records come out deeply frozen, and an update is a new record', async t => {
      const store = await (await backend(t))()
      const instance = instanceRecord('acc', 'sales')
      await store.createInstance(instance, 10)
      const read = await store.findInstanceByName('acc', 'sales')
      t.ok(read !== null && Object.isFrozen(read) && Object.isFrozen(read.connection) && Object.isFrozen(read.profile) && Object.isFrozen(read.webhooks))
      t.throws(() => { (read as { name: string }).name = 'changed' }, TypeError, 'a reader cannot change what other readers see')
      t.notOk(Object.isFrozen(instance) || Object.isFrozen(instance.connection), "the caller's own object is left as it was")
      const updated = await store.updateInstance(instance.id, { desired: 'online' })
      t.ok(updated !== null && Object.isFrozen(updated))
      t.not(updated, read, 'the update is a new record')
      t.equal(read?.desired, 'offline', 'and the record read before it still says what it said')
      t.equal((await store.getInstance(instance.id))?.desired, 'online')
    })

    t.test('a compare-and-set update lands only while the expected fields are unchanged', async t => {
      const store = await (await backend(t))()
      const instance = instanceRecord('acc', 'sales')
      await store.createInstance(instance, 10)
      const hook = (label: string) => ({ label, enabled: true, url: `https://${label}.example`, byEvents: false, events: [], authorizationSealed: null })
      const read = await store.getInstance(instance.id)
      const saved = await store.updateInstanceIfUnchanged(instance.id, { webhooks: read?.webhooks }, { webhooks: [hook('a')] })
      t.same(saved !== 'changed' && saved?.webhooks.map(webhook => webhook.label), ['a'])
      t.equal(await store.updateInstanceIfUnchanged(instance.id, { webhooks: read?.webhooks }, { webhooks: [hook('b')] }), 'changed', 'a write based on a stale read is refused')
      t.same((await store.getInstance(instance.id))?.webhooks.map(webhook => webhook.label), ['a'], 'and changes nothing')

      const outcomes = await Promise.all(['x', 'y', 'z'].map(async label => await store.updateInstanceIfUnchanged(instance.id, { webhooks: [hook('a')] }, { webhooks: [hook('a'), hook(label)] })))
      t.equal(outcomes.filter(outcome => outcome !== 'changed').length, 1, 'of three concurrent writes from the same read, exactly one lands')
      t.ok(await store.deleteInstance(instance.id))
      t.equal(await store.updateInstanceIfUnchanged(instance.id, {}, { desired: 'online' }), null, 'never recreates a deleted instance')
    })

    t.test('session batches: creds and keys written together, deleted with the instance', async t => {
      const store = await (await backend(t))()
      const instance = instanceRecord('acc', 'sales')
      await store.createInstance(instance, 10)
      t.notOk(await store.hasSession(instance.id))
      await store.writeSession(instance.id, { creds: '{"me":1}', keys: { 'pre-key-1': 'a', 'pre-key-2': 'b', 'session-x': 'c' } })
      t.ok(await store.hasSession(instance.id))
      t.equal(await store.readSessionCreds(instance.id), '{"me":1}')
      await store.writeSession(instance.id, { keys: { 'pre-key-1': null, 'pre-key-3': 'd' } })
      t.same(Object.fromEntries(await store.readSessionKeys(instance.id, ['pre-key-1', 'pre-key-2', 'pre-key-3', 'missing'])), { 'pre-key-2': 'b', 'pre-key-3': 'd' })
      await store.deleteSession(instance.id)
      t.notOk(await store.hasSession(instance.id))
      t.same(await store.readSessionKeys(instance.id, ['pre-key-2']), new Map())
      await store.writeSession(instance.id, { creds: '{}' })
      await store.deleteInstance(instance.id)
      t.notOk(await store.hasSession(instance.id))
      await store.writeSession(instance.id, { creds: '{"late":true}' })
      t.notOk(await store.hasSession(instance.id), 'a late write after delete is dropped')
    })

    t.test('a large key batch is applied whole', async t => {
      const store = await (await backend(t))()
      const instance = instanceRecord('acc', 'bulk')
      await store.createInstance(instance, 10)
      const keys = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`pre-key-${i}`, 'x'.repeat(100)]))
      await store.writeSession(instance.id, { creds: '{}', keys })
      t.equal((await store.readSessionKeys(instance.id, Object.keys(keys))).size, 5000)
    })

    t.test('everything survives a restart', async t => {
      const reopen = await backend(t)
      const first = await reopen()
      const account = accountRecord()
      const instance = instanceRecord(account.id, 'sales')
      await first.createAccount(account)
      await first.createInstance(instance, 10)
      await first.updateInstance(instance.id, { desired: 'online' })
      await first.writeSession(instance.id, { creds: '{"me":"x"}', keys: { 'session-1': 's' } })
      const second = await reopen()
      t.same(await second.listAccounts(), [account])
      t.equal((await second.getInstance(instance.id))?.desired, 'online')
      t.same(await second.findTokenOwner(instance.tokenHash), { kind: 'instance', accountId: account.id, instanceId: instance.id, instanceName: 'sales' })
      t.equal(await second.readSessionCreds(instance.id), '{"me":"x"}')
      t.same(Object.fromEntries(await second.readSessionKeys(instance.id, ['session-1'])), { 'session-1': 's' })
      await second.ping()
    })
  })
}

conformance('file', fileBackend)
const redis = await redisBackend(t)
if (redis !== null) conformance('redis', redis)
