import t from 'tap'
import { startApp } from '../support/app.js'
import { backends } from '../support/backends.js'

// Secrets at rest (proxy passwords, webhook authorization values) are sealed
// with one key per store. A process with another key must not start on it.

const REFUSED = /is not the one this store's secrets are sealed with: every replica sharing a store needs the same ENCRYPTION_KEY/

for (const backend of await backends(t)) {
  t.test(`${backend.name} store: a process with another encryption key refuses to start; one with the same key opens what the first sealed`, async t => {
    const env = backend.env()
    const first = await startApp(t, { env: { ...env, ENCRYPTION_KEY: 'the-first-key-0123456789' } })
    const sealed = first.app.secretBox.seal('proxy-password')
    // Redis: a second replica on the same store; files: the same DATA_DIR after a restart.
    const dataDir = backend.name === 'file' ? first.dataDir : undefined
    if (dataDir !== undefined) await first.close()

    await t.rejects(startApp(t, { env: { ...env, ENCRYPTION_KEY: 'another-key-0123456789' }, dataDir }), REFUSED)
    const same = await startApp(t, { env: { ...env, ENCRYPTION_KEY: 'the-first-key-0123456789' }, dataDir })
    t.equal(same.app.secretBox.open(sealed), 'proxy-password')
  })
}

t.test('a single node\'s generated key is kept across restarts, and a key configured later is refused', async t => {
  const first = await startApp(t, { env: { ENCRYPTION_KEY: undefined } })
  const sealed = first.app.secretBox.seal('webhook-authorization')
  await first.close()
  const restarted = await startApp(t, { env: { ENCRYPTION_KEY: undefined }, dataDir: first.dataDir })
  t.equal(restarted.app.secretBox.open(sealed), 'webhook-authorization')
  await restarted.close()
  await t.rejects(startApp(t, { env: { ENCRYPTION_KEY: 'configured-later-0123456789' }, dataDir: first.dataDir }), REFUSED)
})
