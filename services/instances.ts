import { randomUUID } from 'node:crypto'
import type { ConnectReplyType, CreateInstanceInput, InstanceViewType, ProxyInput, ProxyViewType } from '../schemas/instance.js'
import { deepFreeze } from '../stores/deep-freeze.js'
import type { InstanceRecord, ProxyRecord, Store, WebhookRecord } from '../stores/store.js'
import type { AccountCaller, AuthService, TenantCaller } from './auth.js'
import { errors } from './errors.js'
import type { SecretBox } from './secret-box.js'
import type { StateRecorder } from './state-events.js'
import { generateToken, hashToken } from './tokens.js'
import { refuseLiteralDestination } from './webhooks/destination.js'
import type { WebhookQueue } from './webhooks/queue.js'

/** What the instance API needs from the WhatsApp session runtime (services/sessions). */
export interface SessionControl {
  connect: (instance: InstanceRecord, options: { number?: string }) => Promise<ConnectReplyType>
  reconnect: (instance: InstanceRecord) => Promise<void>
  logout: (instance: InstanceRecord) => Promise<void>
  remove: (instance: InstanceRecord) => Promise<void>
}

export interface InstanceServiceDeps {
  store: Store
  auth: AuthService
  sessions: SessionControl
  webhookQueue: Pick<WebhookQueue, 'forget'>
  recordState: StateRecorder
  secretBox: SecretBox
  quota: number
  allowPrivateWebhooks: boolean
}

const DISPLAY_STATUS: Record<InstanceRecord['connection']['state'], string> = {
  connected: 'Connected',
  connecting: 'Connecting',
  disconnected: 'Disconnected',
  loggedout: 'Logged out'
}

export type InstanceService = ReturnType<typeof createInstanceService>

export function createInstanceService ({ store, auth, sessions, webhookQueue, recordState, secretBox, quota, allowPrivateWebhooks }: InstanceServiceDeps) {
  /**
   * The instance a caller names, or the documented error: 403 for an instance
   * token naming another instance, 404 for a name the caller's account does
   * not own (which is also what another account's instance looks like).
   */
  async function resolve (caller: TenantCaller, name: string): Promise<InstanceRecord> {
    auth.assertInstanceScope(caller, name)
    const instance = caller.kind === 'instance'
      ? await store.getInstance(caller.instanceId)
      : await store.findInstanceByName(caller.accountId, name)
    if (instance === null) throw errors.instanceNotFound()
    return instance
  }

  function sealProxy (input: Pick<ProxyInput, 'enabled' | 'protocol' | 'host' | 'port' | 'username' | 'password'>): ProxyRecord {
    return {
      enabled: input.enabled,
      protocol: input.protocol,
      host: input.host,
      port: input.port,
      username: input.username ?? null,
      passwordSealed: input.password === undefined ? null : secretBox.seal(input.password)
    }
  }

  function inlineProxy (input: CreateInstanceInput): ProxyRecord | null {
    if (input.proxyHost === undefined || input.proxyPort === undefined) return null
    return sealProxy({
      enabled: input.proxyEnabled ?? true,
      protocol: input.proxyProtocol ?? 'http',
      host: input.proxyHost,
      port: input.proxyPort,
      username: input.proxyUsername,
      password: input.proxyPassword
    })
  }

  function inlineWebhooks (input: CreateInstanceInput): WebhookRecord[] {
    if (input.webhookUrl === undefined) return []
    const refusal = allowPrivateWebhooks ? null : refuseLiteralDestination(new URL(input.webhookUrl))
    if (refusal !== null) throw errors.webhookUrlRefused(refusal)
    return [{
      label: 'default',
      enabled: input.webhookEnabled ?? true,
      url: input.webhookUrl,
      byEvents: input.webhookByEvents ?? false,
      events: input.webhookEvents ?? [],
      authorizationSealed: input.webhookAuthorization === undefined ? null : secretBox.seal(input.webhookAuthorization)
    }]
  }

  return {
    resolve,

    async create (caller: AccountCaller, input: CreateInstanceInput) {
      const token = input.token ?? generateToken()
      const webhooks = inlineWebhooks(input)
      // Webhook deliveries are signed with a per-instance secret, shown once, here.
      const webhookSigningSecret = webhooks.length > 0 ? generateToken() : undefined
      const now = new Date().toISOString()
      const instance: InstanceRecord = {
        id: randomUUID(),
        accountId: caller.accountId,
        name: input.name,
        tokenHash: hashToken(token),
        createdAt: now,
        updatedAt: now,
        connection: { state: 'disconnected', detail: null, numberJid: null },
        profile: { name: null, pictureUrl: null, isBusiness: false, businessName: null },
        proxy: inlineProxy(input),
        webhooks,
        desired: 'offline',
        seq: 0,
        webhookSecretSealed: webhookSigningSecret === undefined ? null : secretBox.seal(webhookSigningSecret)
      }
      const result = await store.createInstance(instance, quota)
      if (result === 'name_taken') throw errors.instanceNameTaken()
      if (result === 'token_taken') throw errors.instanceTokenTaken()
      if (result === 'quota_exceeded') throw errors.instanceQuotaExceeded()
      // Subscribers learn of the new instance as its first event.
      await recordState(instance, { state: 'disconnected', previousState: null, detail: 'created', statusCode: null, numberJid: null })
      return { name: instance.name, token, status: 'disconnected' as const, ...(webhookSigningSecret === undefined ? {} : { webhookSigningSecret }) }
    },

    /**
     * Without names: every instance the caller may see. With names: those that
     * exist, in the order asked; a single name that does not exist is a 404.
     */
    async list (caller: TenantCaller, names: string[]): Promise<InstanceViewType[]> {
      let instances: InstanceRecord[]
      if (caller.kind === 'instance') {
        const own = await store.getInstance(caller.instanceId)
        instances = own === null ? [] : [own]
      } else if (names.length === 1) {
        // The common call (one instance's status, often polled) skips the batch machinery below.
        const found = await store.findInstanceByName(caller.accountId, names[0] as string)
        instances = found === null ? [] : [found]
      } else if (names.length > 1) {
        const found = await Promise.all([...new Set(names)].map(async name => await store.findInstanceByName(caller.accountId, name)))
        instances = found.filter((instance): instance is InstanceRecord => instance !== null)
      } else {
        instances = (await store.listInstances(caller.accountId)).sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      }
      if (names.length === 1 && caller.kind === 'account' && instances.length === 0) throw errors.instanceNotFound()
      return instances.map(viewOf)
    },

    async connect (caller: TenantCaller, name: string, options: { number?: string }) {
      return await sessions.connect(await resolve(caller, name), options)
    },

    // Chained, not awaited: its common refusal (no saved session, a 400) then
    // passes through as one rejection instead of being rethrown here.
    reconnect: (caller: TenantCaller, name: string): Promise<void> => resolve(caller, name).then(sessions.reconnect),

    async logout (caller: TenantCaller, name: string) {
      await sessions.logout(await resolve(caller, name))
    },

    async remove (caller: AccountCaller, name: string) {
      const instance = await resolve(caller, name)
      // Its last event (loggedout, deleted) is queued by then, and its webhooks still get it.
      await sessions.remove(instance)
      await webhookQueue.forget(instance.id)
    },

    async getProxy (caller: TenantCaller, name: string): Promise<ProxyViewType> {
      return proxyView((await resolve(caller, name)).proxy)
    },

    async setProxy (caller: TenantCaller, name: string, input: ProxyInput): Promise<ProxyViewType> {
      const instance = await resolve(caller, name)
      const updated = await store.updateInstance(instance.id, { proxy: sealProxy(input) })
      if (updated === null) throw errors.instanceNotFound()
      return proxyView(updated.proxy)
    }
  }
}

function proxyView (proxy: ProxyRecord | null): ProxyViewType {
  return {
    enabled: proxy?.enabled ?? false,
    protocol: proxy?.protocol ?? null,
    host: proxy?.host ?? null,
    port: proxy?.port ?? null,
    username: proxy?.username ?? null,
    hasPassword: proxy?.passwordSealed != null
  }
}

/**
 * A record never changes (stores/store.ts), so its view is built once and
 * shared, frozen, by every later read of it: a polled status then reuses the
 * view, and the route its serialized reply. An updated instance is a new
 * record, hence a new view; an old one goes with its record.
 */
const views = new WeakMap<InstanceRecord, InstanceViewType>()

function viewOf (instance: InstanceRecord): InstanceViewType {
  let view = views.get(instance)
  if (view === undefined) {
    view = deepFreeze(toView(instance))
    views.set(instance, view)
  }
  return view
}

function toView (instance: InstanceRecord): InstanceViewType {
  const { enabled, protocol, host, port } = proxyView(instance.proxy)
  return {
    name: instance.name,
    connection: {
      state: instance.connection.state,
      numberJid: instance.connection.numberJid,
      displayStatus: DISPLAY_STATUS[instance.connection.state]
    },
    profile: instance.profile,
    proxy: { enabled, protocol, host, port },
    webhooks: instance.webhooks.map(({ label, enabled, url, byEvents, events }) => ({ label, enabled, url, byEvents, events })),
    createdAt: instance.createdAt,
    updatedAt: instance.updatedAt
  }
}
