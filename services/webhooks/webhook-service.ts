import { randomBytes } from 'node:crypto'
import { type InstanceStateEvent, toEnvelope } from '../../bus/events.js'
import type { WebhookInput, WebhookViewType } from '../../schemas/webhook.js'
import type { InstanceRecord, Store, WebhookRecord } from '../../stores/store.js'
import type { TenantCaller } from '../auth.js'
import { errors } from '../errors.js'
import type { SecretBox } from '../secret-box.js'
import type { Delivery } from './delivery.js'
import { refuseLiteralDestination } from './destination.js'
import type { WebhookQueue } from './queue.js'

export const MAX_ENABLED_WEBHOOKS = 3
const EVENT = 'instance.state'
/** Concurrent saves of one instance's webhooks retry this often before giving up with 503. */
const MAX_SAVE_ATTEMPTS = 20

export interface WebhookDispatcher {
  /** Queues the event for every enabled webhook of the instance that wants it. */
  dispatch: (instance: InstanceRecord, event: InstanceStateEvent) => Promise<void>
}

/** Turns recorded events into durable deliveries; the queue does the rest. */
export function createWebhookDispatcher ({ queue, baseUrl }: { queue: WebhookQueue, baseUrl: string }): WebhookDispatcher {
  return {
    async dispatch (instance, event) {
      const targets = instance.webhooks.filter(webhook => webhook.enabled && (webhook.events.length === 0 || webhook.events.includes(EVENT)))
      if (targets.length === 0 || instance.webhookSecretSealed === null) return
      const body = JSON.stringify(toEnvelope(event, baseUrl))
      const createdAt = new Date().toISOString()
      await queue.enqueue(targets.map((webhook): Delivery => ({
        id: event.id,
        instanceId: instance.id,
        label: webhook.label,
        url: webhook.byEvents ? `${webhook.url.replace(/\/+$/, '')}/${EVENT}` : webhook.url,
        body,
        authorizationSealed: webhook.authorizationSealed,
        secretSealed: instance.webhookSecretSealed as string,
        attempts: 0,
        lastError: null,
        createdAt
      })))
    }
  }
}

export interface WebhookServiceDeps {
  store: Store
  secretBox: SecretBox
  queue: WebhookQueue
  resolve: (caller: TenantCaller, name: string) => Promise<InstanceRecord>
  allowPrivate: boolean
}

function view ({ label, enabled, url, byEvents, events, authorizationSealed }: WebhookRecord): WebhookViewType {
  return { label, enabled, url, byEvents, events, hasAuthorization: authorizationSealed !== null }
}

/** RyzeAPI's webhook configuration: upsert by label, at most three enabled, secrets sealed at rest. */
export function createWebhookService ({ store, secretBox, queue, resolve, allowPrivate }: WebhookServiceDeps) {
  return {
    async save (caller: TenantCaller, name: string, input: WebhookInput): Promise<{ webhook: WebhookViewType, signingSecret?: string }> {
      const refusal = allowPrivate ? null : refuseLiteralDestination(new URL(input.url))
      if (refusal !== null) throw errors.webhookUrlRefused(refusal)
      const label = input.label ?? 'default'
      // Read, change, and write only if nobody else changed the webhooks meanwhile; else read again.
      // Two saves at once thus both land, the limit holds, and exactly one caller gets the signing secret.
      for (let attempt = 1; ; attempt++) {
        const instance = await resolve(caller, name)
        const previous = instance.webhooks.find(webhook => webhook.label === label)
        const webhook: WebhookRecord = {
          label,
          enabled: input.enabled,
          url: input.url,
          byEvents: input.byEvents ?? false,
          events: input.events ?? [],
          // Omitting authorization on an update keeps the stored one.
          authorizationSealed: input.authorization === undefined ? previous?.authorizationSealed ?? null : secretBox.seal(input.authorization)
        }
        const webhooks = [...instance.webhooks.filter(existing => existing.label !== label), webhook]
        if (webhooks.filter(existing => existing.enabled).length > MAX_ENABLED_WEBHOOKS) throw errors.tooManyWebhooks(MAX_ENABLED_WEBHOOKS)
        const signingSecret = instance.webhookSecretSealed === null ? randomBytes(32).toString('hex') : undefined
        const patch = signingSecret === undefined ? { webhooks } : { webhooks, webhookSecretSealed: secretBox.seal(signingSecret) }
        const expected = { webhooks: instance.webhooks, webhookSecretSealed: instance.webhookSecretSealed }
        const saved = await store.updateInstanceIfUnchanged(instance.id, expected, patch)
        if (saved === null) throw errors.instanceNotFound()
        if (saved !== 'changed') return signingSecret === undefined ? { webhook: view(webhook) } : { webhook: view(webhook), signingSecret }
        if (attempt === MAX_SAVE_ATTEMPTS) throw errors.busy()
      }
    },

    async list (caller: TenantCaller, name: string, label?: string): Promise<WebhookViewType[]> {
      const instance = await resolve(caller, name)
      const webhooks = instance.webhooks.filter(webhook => label === undefined || webhook.label === label)
      if (label !== undefined && webhooks.length === 0) throw errors.webhookNotFound()
      return webhooks.map(view)
    },

    async deadLetters (caller: TenantCaller, name: string) {
      const instance = await resolve(caller, name)
      return (await queue.deadLetters(instance.id)).map(letter => ({
        id: letter.id,
        label: letter.label,
        url: letter.url,
        attempts: letter.attempts,
        lastError: letter.lastError,
        failedAt: letter.failedAt,
        event: JSON.parse(letter.body) as unknown
      }))
    }
  }
}

export type WebhookService = ReturnType<typeof createWebhookService>
