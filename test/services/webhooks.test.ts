import { lookup } from 'node:dns/promises'
import { readdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import { isPublicAddress } from '../../services/webhooks/destination.js'
import { call, createTenant, startApp, type TestApp } from '../support/app.js'
import { backends } from '../support/backends.js'
import { eventually } from '../support/eventually.js'
import { freePort } from '../support/ports.js'
import { signatureIsValid, startWebhookReceiver } from '../support/webhook-receiver.js'

// Webhook deliveries of instance.state: real HTTP to a local receiver, real
// stores and queues (files, or Redis with BullMQ), events produced by the
// service's one state recorder.

const fastRetries = { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_BASE_MS: '50', WEBHOOK_RETRY_MAX_MS: '200', WEBHOOK_MAX_ATTEMPTS: '6' }

async function withWebhook (service: TestApp, url: string, extra: Record<string, unknown> = {}): Promise<{ accountId: string, accountToken: string, instanceToken: string, secret: string }> {
  const { accountId, accountToken, instanceToken } = await createTenant(service)
  const saved = await call(service.url, 'POST', '/api/events/webhook/sales', { token: instanceToken, body: { enabled: true, url, ...extra } })
  if (saved.status !== 200) throw new Error(JSON.stringify(saved.body))
  return { accountId, accountToken, instanceToken, secret: saved.body.signingSecret }
}

/** Drives `count` state changes through the service's recorder, as the session service does. */
async function produceEvents (service: TestApp, accountId: string, count: number): Promise<void> {
  const instance = await service.app.store.findInstanceByName(accountId, 'sales')
  if (instance === null) throw new Error('no instance')
  for (let i = 0; i < count; i++) {
    await service.app.recordState(instance, { state: i % 2 === 0 ? 'connecting' : 'disconnected', previousState: i % 2 === 0 ? 'disconnected' : 'connecting', detail: `step_${i}`, statusCode: null, numberJid: null })
  }
}

/** What the webhook outbox still holds of an instance: its files, or its Redis keys. */
async function webhookLeftovers (service: TestApp, instanceId: string): Promise<string[]> {
  const { redis, config } = service.app
  if (redis !== null) return await redis.keys(`${config.REDIS_PREFIX}webhook:*${instanceId}*`)
  return (await readdir(join(service.dataDir, 'webhooks'))).filter(name => name.startsWith(instanceId))
}

for (const backend of await backends(t)) {
  t.test(`${backend.name}: a receiver that fails the first attempts gets every event exactly once, in order, signed`, async t => {
    const receiver = await startWebhookReceiver(t)
    const service = await startApp(t, { env: { ...backend.env(), ...fastRetries } })
    const { accountId, secret } = await withWebhook(service, `${receiver.url}/hooks`, { authorization: 'Bearer receiver-key', byEvents: true })
    t.match(secret, /^[0-9a-f]{64}$/)
    receiver.failNext(3, 503)
    await produceEvents(service, accountId, 5)
    const accepted = await receiver.waitForAccepted(5)
    t.equal(receiver.requests.length, 8, 'three failures, then five deliveries')
    t.same(accepted.map(request => request.json.data.detail), ['step_0', 'step_1', 'step_2', 'step_3', 'step_4'])
    t.same(accepted.map(request => request.json.seq), [2, 3, 4, 5, 6], 'in order, after the instance\'s first event')
    t.equal(new Set(accepted.map(request => request.json.id)).size, 5, 'each event once')
    for (const request of accepted) {
      t.equal(request.path, '/hooks/instance.state', 'byEvents appends the event name')
      t.equal(request.headers.authorization, 'Bearer receiver-key')
      t.equal(request.headers['x-webhook-id'], request.json.id)
      t.ok(signatureIsValid(request, secret), 'signature valid')
      t.notOk(signatureIsValid(request, 'f'.repeat(64)), 'and only with the right secret')
      t.match(request.json, { event: 'instance.state', instanceData: { instance: 'sales' } })
    }
    await new Promise(resolve => setTimeout(resolve, 300))
    t.equal(receiver.accepted().length, 5, 'nothing delivered twice')
  })

  t.test(`${backend.name}: deliveries that cannot succeed become dead letters, readable through the API`, async t => {
    const receiver = await startWebhookReceiver(t)
    const service = await startApp(t, { env: { ...backend.env(), ...fastRetries, WEBHOOK_MAX_ATTEMPTS: '3' } })
    const { accountId, instanceToken } = await withWebhook(service, receiver.url)
    receiver.failNext(1, 410)
    receiver.failNext(3, 500)
    await produceEvents(service, accountId, 3)
    await receiver.waitForAccepted(1)
    t.equal(receiver.requests.length, 5, 'a 4xx is not retried; a 5xx is, up to the attempt limit')
    const dead = await call(service.url, 'GET', '/api/events/deadLetters/sales', { token: instanceToken })
    t.equal(dead.status, 200)
    t.equal(dead.body.deadLetters.length, 2)
    const [retried, rejected] = dead.body.deadLetters
    t.match(rejected, { label: 'default', attempts: 1, lastError: 'HTTP 410', event: { event: 'instance.state', data: { detail: 'step_0' } } })
    t.match(retried, { attempts: 3, lastError: 'HTTP 500', event: { data: { detail: 'step_1' } } })
    t.equal(receiver.accepted()[0]?.json.data.detail, 'step_2', 'the next event went through after the dead ones')
  })

  t.test(`${backend.name}: deleting an instance delivers its last event, then leaves none of its dead letters or outboxes behind`, async t => {
    const receiver = await startWebhookReceiver(t)
    const service = await startApp(t, { env: { ...backend.env(), ...fastRetries } })
    const { accountId, accountToken } = await withWebhook(service, receiver.url)
    const instance = await service.app.store.findInstanceByName(accountId, 'sales')
    if (instance === null) throw new Error('no instance')
    receiver.failNext(1, 410)
    await produceEvents(service, accountId, 1)
    t.ok(await eventually(async () => (await service.app.webhookQueue.deadLetters(instance.id)).length === 1), 'the refused delivery became a dead letter')

    t.equal((await call(service.url, 'DELETE', '/api/instance/delete/sales', { token: accountToken })).status, 200)
    const [last] = await receiver.waitForAccepted(1)
    t.match(last?.json.data, { state: 'loggedout', detail: 'deleted' }, 'the webhook still hears of the deletion')
    t.same(await service.app.webhookQueue.deadLetters(instance.id), [], 'the dead letters went with the instance')
    t.ok(await eventually(async () => (await webhookLeftovers(service, instance.id)).length === 0), 'the outbox went too')
  })

  t.test(`${backend.name}: a deleted instance's last delivery that fails for good leaves no dead letter`, async t => {
    const receiver = await startWebhookReceiver(t)
    const service = await startApp(t, { env: { ...backend.env(), ...fastRetries, WEBHOOK_MAX_ATTEMPTS: '2' } })
    const { accountId, accountToken } = await withWebhook(service, receiver.url)
    const instance = await service.app.store.findInstanceByName(accountId, 'sales')
    if (instance === null) throw new Error('no instance')
    receiver.failNext(2, 500)
    t.equal((await call(service.url, 'DELETE', '/api/instance/delete/sales', { token: accountToken })).status, 200)
    t.ok(await eventually(async () => receiver.requests.length === 2), 'both attempts were made')
    t.ok(await eventually(async () => (await webhookLeftovers(service, instance.id)).length === 0), 'the outbox went')
    t.same(await service.app.webhookQueue.deadLetters(instance.id), [])
  })

  t.test(`${backend.name}: leftovers of an instance deleted by a process that stopped before forgetting it go at the next start`, async t => {
    const receiver = await startWebhookReceiver(t)
    const env = { ...backend.env(), ...fastRetries }
    const first = await startApp(t, { env })
    const { accountId } = await withWebhook(first, receiver.url)
    const instance = await first.app.store.findInstanceByName(accountId, 'sales')
    if (instance === null) throw new Error('no instance')
    receiver.failNext(1, 410)
    await produceEvents(first, accountId, 1)
    t.ok(await eventually(async () => (await first.app.webhookQueue.deadLetters(instance.id)).length === 1), 'a dead letter exists')
    // The record goes, and the process stops before the webhook queue hears of it.
    await first.app.store.deleteInstance(instance.id)
    await first.close()

    const second = await startApp(t, { env, dataDir: first.dataDir })
    t.same(await second.app.webhookQueue.deadLetters(instance.id), [], 'its dead letters are gone')
    t.same(await webhookLeftovers(second, instance.id), [], 'and nothing else of it is left')
  })

  t.test(`${backend.name}: a receiver that is down through a restart still gets the events`, async t => {
    const port = await freePort()
    const env = { ...backend.env(), ...fastRetries, WEBHOOK_MAX_ATTEMPTS: '50', WEBHOOK_RETRY_MAX_MS: '100' }
    const first = await startApp(t, { env })
    const { accountId } = await withWebhook(first, `http://127.0.0.1:${port}/`)
    await produceEvents(first, accountId, 3)
    await new Promise(resolve => setTimeout(resolve, 200))
    await first.close()

    const second = await startApp(t, { env, dataDir: first.dataDir })
    const receiver = await startWebhookReceiver(t, port)
    const accepted = await receiver.waitForAccepted(3)
    t.same(accepted.map(request => request.json.data.detail), ['step_0', 'step_1', 'step_2'])
    await produceEvents(second, accountId, 1)
    t.same((await receiver.waitForAccepted(4)).map(request => request.json.data.detail).slice(3), ['step_0'], 'and the new process keeps delivering')
  })
}

t.test('redis: an outbox whose head never got its job (the process stopped in between) is delivered after a restart', async t => {
  const redis = (await backends(t)).find(backend => backend.name === 'redis')
  if (redis === undefined) return
  const port = await freePort()
  const redisEnv = redis.env()
  const env = { ...redisEnv, ...fastRetries, WEBHOOK_MAX_ATTEMPTS: '50', WEBHOOK_RETRY_MAX_MS: '100' }
  const first = await startApp(t, { env })
  const { accountId } = await withWebhook(first, `http://127.0.0.1:${port}/`)
  await produceEvents(first, accountId, 2)
  await first.close()
  // As if the process had stopped after pushing the deliveries and before scheduling them.
  const client = new Redis(redisEnv.REDIS_URL ?? '')
  t.teardown(async () => { await client.quit() })
  const jobKeys = await client.keys(`${redisEnv.REDIS_PREFIX ?? ''}bull:*`)
  t.ok(jobKeys.length > 0, 'the deliveries had jobs')
  await client.del(...jobKeys)

  await startApp(t, { env })
  const receiver = await startWebhookReceiver(t, port)
  t.same((await receiver.waitForAccepted(2)).map(request => request.json.data.detail), ['step_0', 'step_1'])
})

t.test('webhook configuration', async t => {
  const service = await startApp(t, { env: fastRetries })
  const { instanceToken } = await createTenant(service)
  const save = async (body: Record<string, unknown>): Promise<any> => await call(service.url, 'POST', '/api/events/webhook/sales', { token: instanceToken, body })

  const first = await save({ enabled: true, url: 'https://a.example/hook', authorization: 'Bearer a-secret' })
  t.equal(first.status, 200)
  t.same(first.body.webhook, { label: 'default', enabled: true, url: 'https://a.example/hook', byEvents: false, events: [], hasAuthorization: true })
  t.match(first.body.signingSecret, /^[0-9a-f]{64}$/, 'the signing secret is shown with the first webhook')
  const updated = await save({ enabled: true, url: 'https://a.example/v2' })
  t.equal(updated.body.signingSecret, undefined, 'and only then')
  t.equal(updated.body.webhook.hasAuthorization, true, 'an update without authorization keeps the stored one')

  t.equal((await save({ label: 'b', enabled: true, url: 'https://b.example' })).status, 200)
  t.equal((await save({ label: 'c', enabled: true, url: 'https://c.example' })).status, 200)
  const fourth = await save({ label: 'd', enabled: true, url: 'https://d.example' })
  t.equal(fourth.status, 400)
  t.same(fourth.body, { success: false, error: { message: 'At most 3 enabled webhooks per instance' } })
  t.equal((await save({ label: 'd', enabled: false, url: 'https://d.example' })).status, 200, 'a disabled fourth is fine')

  const all = await call(service.url, 'GET', '/api/events/getWebhook/sales', { token: instanceToken })
  t.same(all.body.webhooks.map((webhook: { label: string }) => webhook.label), ['default', 'b', 'c', 'd'])
  const one = await call(service.url, 'GET', '/api/events/getWebhook/sales?label=b', { token: instanceToken })
  t.same(one.body.webhooks.map((webhook: { url: string }) => webhook.url), ['https://b.example'])
  const missing = await call(service.url, 'GET', '/api/events/getWebhook/sales?label=zzz', { token: instanceToken })
  t.equal(missing.status, 404)
  t.same(missing.body, { success: false, error: { message: 'Webhook not found' } })
  t.notMatch(JSON.stringify(await service.app.store.listAllInstances()), /a-secret/, 'authorization sealed at rest')
  t.notMatch(JSON.stringify(all.body), /a-secret/)
})

for (const backend of await backends(t)) {
  t.test(`${backend.name}: concurrent saves of different labels all land, and exactly one caller gets the signing secret`, async t => {
    const service = await startApp(t, { env: { ...backend.env(), ...fastRetries } })
    const { instanceToken } = await createTenant(service)
    const saves = await Promise.all(['a', 'b', 'c', 'd'].map(async label => await call(service.url, 'POST', '/api/events/webhook/sales', { token: instanceToken, body: { label, enabled: true, url: `https://${label}.example` } })))
    t.same(saves.map(save => save.status).sort(), [200, 200, 200, 400], 'three enabled at most, even when saved at once')
    const saved = saves.filter(save => save.status === 200).map(save => save.body.webhook.label as string).sort()
    const all = await call(service.url, 'GET', '/api/events/getWebhook/sales', { token: instanceToken })
    t.same(all.body.webhooks.map((webhook: { label: string }) => webhook.label).sort(), saved, 'no save undid another')
    t.equal(saves.filter(save => save.body.signingSecret !== undefined).length, 1, 'one signing secret, shown once')
  })
}

t.test('webhook targets on private networks are refused unless allowed', async t => {
  const service = await startApp(t)
  const { accountToken, instanceToken } = await createTenant(service)
  for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.1.2.3/', 'http://192.168.0.10/', 'http://169.254.169.254/latest', 'http://[::1]:80/', 'http://[::ffff:127.0.0.1]/', 'http://100.64.0.1/']) {
    const reply = await call(service.url, 'POST', '/api/events/webhook/sales', { token: instanceToken, body: { enabled: true, url } })
    t.equal(reply.status, 400, url)
    t.match(reply.body.error.message, /^Webhook URL refused: /)
  }
  const inline = await call(service.url, 'POST', '/api/instance/new', { token: accountToken, body: { name: 'inline', webhookUrl: 'http://127.0.0.1/' } })
  t.equal(inline.status, 400)
  t.ok(isPublicAddress('93.184.216.34'))
  t.notOk(isPublicAddress('172.16.0.1'))
})

t.test('a name that resolves to a private address is refused at delivery time', async t => {
  const names = ['vm', hostname()]
  let loopbackName: string | undefined
  for (const name of names) {
    const addresses = await lookup(name, { all: true }).catch(() => [])
    if (addresses.length > 0 && addresses.every(({ address }) => !isPublicAddress(address))) { loopbackName = name; break }
  }
  if (loopbackName === undefined) {
    t.comment('NOTICE: no host name on this machine resolves only to private addresses; skipped')
    return
  }
  const receiver = await startWebhookReceiver(t)
  const service = await startApp(t, { env: { WEBHOOK_RETRY_BASE_MS: '50' } })
  const { accountId, instanceToken } = await withWebhook(service, `http://${loopbackName}:${receiver.port}/`)
  await produceEvents(service, accountId, 1)
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(receiver.requests.length, 0, 'nothing reached the private address')
  const dead = await call(service.url, 'GET', '/api/events/deadLetters/sales', { token: instanceToken })
  t.match(dead.body.deadLetters[0]?.lastError, /^Refused destination: .* resolves to .*not a public address/)
})

t.test('an inline webhook at creation gets its signing secret in the answer and receives the first event', async t => {
  const receiver = await startWebhookReceiver(t)
  const service = await startApp(t, { env: fastRetries })
  const account = await call(service.url, 'POST', '/api/account', { token: service.adminToken, body: { name: 'acme' } })
  const created = await call(service.url, 'POST', '/api/instance/new', { token: account.body.account.token, body: { name: 'sales', webhookUrl: receiver.url } })
  t.equal(created.status, 201)
  const secret = created.body.instance.webhookSigningSecret
  t.match(secret, /^[0-9a-f]{64}$/)
  const [first] = await receiver.waitForAccepted(1)
  t.match(first?.json, { event: 'instance.state', data: { instance: 'sales', state: 'disconnected', previousState: null, detail: 'created' }, seq: 1 })
  t.ok(first !== undefined && signatureIsValid(first, secret))
})
