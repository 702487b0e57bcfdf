/**
 * The persistence port. Two real backends implement it (stores/file-store.ts,
 * the embedded default, and stores/redis-store.ts); stores/index.ts picks one.
 * Records hold only hashes of tokens and encrypted secrets: a store dump never
 * reveals a credential.
 *
 * An instance record never changes once stored: an update stores a new one,
 * and stores hand records out deeply frozen. What a reader derives from a
 * record therefore stays true for as long as it holds that record
 * (services/instances.ts keeps each record's API view).
 */

export type ConnectionState = 'connected' | 'connecting' | 'disconnected' | 'loggedout'
export type DesiredState = 'online' | 'offline'
export type ProxyProtocol = 'http' | 'https' | 'socks5'

export interface AccountRecord {
  id: string
  name: string
  tokenHash: string
  createdAt: string
}

export interface ProxyRecord {
  enabled: boolean
  protocol: ProxyProtocol
  host: string
  port: number
  username: string | null
  /** AES-GCM sealed by services/secret-box.ts; never returned by the API. */
  passwordSealed: string | null
}

export interface WebhookRecord {
  label: string
  enabled: boolean
  url: string
  byEvents: boolean
  events: string[]
  authorizationSealed: string | null
}

export interface InstanceConnection {
  state: ConnectionState
  /** Sub-phase or cause of the last transition (qr_ready, network_error, logged_out, …). */
  detail: string | null
  numberJid: string | null
}

export interface InstanceProfile {
  name: string | null
  pictureUrl: string | null
  isBusiness: boolean
  businessName: string | null
}

export interface InstanceRecord {
  id: string
  accountId: string
  name: string
  tokenHash: string
  createdAt: string
  updatedAt: string
  connection: InstanceConnection
  profile: InstanceProfile
  proxy: ProxyRecord | null
  webhooks: WebhookRecord[]
  /** What the instance should be, so a restart resumes the ones that were online. */
  desired: DesiredState
  /** Number of the instance's last instance.state event; rises by one per event. */
  seq: number
  /** The HMAC key that signs this instance's webhook deliveries, sealed; made with its first webhook. */
  webhookSecretSealed: string | null
}

/** The fields of an instance that change after creation. */
export type InstancePatch = Partial<Pick<InstanceRecord, 'connection' | 'profile' | 'proxy' | 'webhooks' | 'webhookSecretSealed' | 'desired'>>

export type TokenOwner =
  | { kind: 'account', accountId: string }
  | { kind: 'instance', accountId: string, instanceId: string, instanceName: string }

export type CreateInstanceResult = 'created' | 'name_taken' | 'token_taken' | 'quota_exceeded'

/**
 * A batch of WhatsApp auth-state changes: the serialized creds record and/or
 * signal keys by `<type>-<id>` (null deletes). A batch is applied atomically.
 */
export interface SessionWrite {
  creds?: string
  keys?: Record<string, string | null>
}

export interface Store {
  readonly kind: 'file' | 'redis'
  /** Resolves when the backend answers; rejects otherwise (readiness probe). */
  ping: () => Promise<void>
  /** Waits for pending writes, then releases the backend. */
  close: () => Promise<void>

  /**
   * Keeps `value` under `name` unless a value is already kept there, and
   * returns the kept one: the first writer wins, for good. Used for facts every
   * process on this store must agree on, such as which key seals the secrets.
   */
  claimSetting: (name: string, value: string) => Promise<string>

  createAccount: (account: AccountRecord) => Promise<void>
  listAccounts: () => Promise<AccountRecord[]>
  findTokenOwner: (tokenHash: string) => Promise<TokenOwner | null>

  /** Checks name uniqueness, token uniqueness and the quota in the same atomic step as the write. */
  createInstance: (instance: InstanceRecord, quota: number) => Promise<CreateInstanceResult>
  getInstance: (instanceId: string) => Promise<InstanceRecord | null>
  findInstanceByName: (accountId: string, name: string) => Promise<InstanceRecord | null>
  listInstances: (accountId: string) => Promise<InstanceRecord[]>
  listAllInstances: () => Promise<InstanceRecord[]>
  /**
   * Returns the updated record, or null when the instance no longer exists (never recreates it).
   * With `nextSeq`, the event counter rises by one in the same atomic step.
   */
  updateInstance: (instanceId: string, patch: InstancePatch, options?: { nextSeq?: boolean }) => Promise<InstanceRecord | null>
  /**
   * Compare-and-set: applies `patch` only while every field in `expected` still
   * holds the given value, so two read-modify-write updates of the same fields
   * (two webhook saves at once, on one replica or two) cannot silently undo one
   * another. 'changed' means another update came first: read again and retry.
   */
  updateInstanceIfUnchanged: (instanceId: string, expected: InstancePatch, patch: InstancePatch) => Promise<InstanceRecord | null | 'changed'>
  /** Removes the instance, its token and its session. */
  deleteInstance: (instanceId: string) => Promise<boolean>

  hasSession: (instanceId: string) => Promise<boolean>
  readSessionCreds: (instanceId: string) => Promise<string | null>
  readSessionKeys: (instanceId: string, keyNames: string[]) => Promise<Map<string, string>>
  writeSession: (instanceId: string, write: SessionWrite) => Promise<void>
  deleteSession: (instanceId: string) => Promise<void>
}
