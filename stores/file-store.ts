import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import writeFileAtomic from 'write-file-atomic'
import { deepFreeze } from './deep-freeze.js'
import type {
  AccountRecord,
  CreateInstanceResult,
  InstancePatch,
  InstanceRecord,
  SessionWrite,
  Store,
  TokenOwner
} from './store.js'

export interface FileStoreOptions {
  dataDir: string
  /**
   * How long to wait for a lock left by a process that died without releasing
   * it (proper-lockfile declares it stale after 5 s). A live holder keeps the
   * lock fresh, so opening still fails while it runs.
   */
  lockWaitMs?: number
}

interface SessionData {
  creds: string | null
  keys: Map<string, string>
}

const STALE_LOCK_MS = 5_000
const JSON_SUFFIX = '.json'

/**
 * The embedded store: every record is a JSON file under DATA_DIR/store, loaded
 * into memory at open and written through on every change.
 *
 * Durability: each file is replaced with write-file-atomic (write a temp file,
 * fsync, rename), so a `kill -9` at any moment leaves either the old or the new
 * content, never a torn file. A session's creds and keys live in one file, so
 * they can never be out of step. Writes to one file are serialized in call order.
 */
export async function openFileStore (options: FileStoreOptions): Promise<Store> {
  const root = join(options.dataDir, 'store')
  const dirs = {
    settings: join(root, 'settings'),
    accounts: join(root, 'accounts'),
    instances: join(root, 'instances'),
    sessions: join(root, 'sessions')
  }
  await Promise.all(Object.values(dirs).map(dir => mkdir(dir, { recursive: true, mode: 0o700 })))

  const releaseLock = await lockDataDir(root, options.dataDir, options.lockWaitMs ?? STALE_LOCK_MS + 1_000)

  const accounts = new Map<string, AccountRecord>()
  const instances = new Map<string, InstanceRecord>()
  const tokens = new Map<string, TokenOwner>()
  // Ids by account, then by name: a lookup hashes only the name (an account
  // id's hash is cached in the string the caller holds), and an account's
  // list and quota read only its own instances.
  const instanceIdsByAccount = new Map<string, Map<string, string>>()
  // A promise per session so concurrent first reads share one file read.
  const sessions = new Map<string, Promise<SessionData>>()
  const sessionIds = new Set<string>()
  const pendingWrites = new Set<Promise<unknown>>()

  const settings = new Map<string, string>()
  for (const setting of await readRecords<{ name: string, value: string }>(dirs.settings)) settings.set(setting.name, setting.value)
  for (const account of await readRecords<AccountRecord>(dirs.accounts)) {
    accounts.set(account.id, account)
    tokens.set(account.tokenHash, { kind: 'account', accountId: account.id })
  }
  for (const instance of await readRecords<InstanceRecord>(dirs.instances)) {
    indexInstance(deepFreeze(instance))
  }
  for (const name of await listJsonFiles(dirs.sessions)) sessionIds.add(name)

  function indexInstance (instance: InstanceRecord): void {
    instances.set(instance.id, instance)
    tokens.set(instance.tokenHash, { kind: 'instance', accountId: instance.accountId, instanceId: instance.id, instanceName: instance.name })
    let ids = instanceIdsByAccount.get(instance.accountId)
    if (ids === undefined) {
      ids = new Map()
      instanceIdsByAccount.set(instance.accountId, ids)
    }
    ids.set(instance.name, instance.id)
  }

  function unindexInstance (instance: InstanceRecord): void {
    instances.delete(instance.id)
    tokens.delete(instance.tokenHash)
    const ids = instanceIdsByAccount.get(instance.accountId)
    ids?.delete(instance.name)
    if (ids?.size === 0) instanceIdsByAccount.delete(instance.accountId)
  }

  async function track<T> (work: Promise<T>): Promise<T> {
    pendingWrites.add(work)
    try {
      return await work
    } finally {
      pendingWrites.delete(work)
    }
  }

  const writeJson = async (dir: string, id: string, value: unknown): Promise<void> =>
    await track(writeFileAtomic(join(dir, id + JSON_SUFFIX), JSON.stringify(value), { mode: 0o600 }))

  const removeJson = async (dir: string, id: string): Promise<void> =>
    await track(rm(join(dir, id + JSON_SUFFIX), { force: true }))

  async function readSessionFile (instanceId: string): Promise<SessionData> {
    if (!sessionIds.has(instanceId)) return { creds: null, keys: new Map() }
    const raw = JSON.parse(await readFile(join(dirs.sessions, instanceId + JSON_SUFFIX), 'utf8')) as { creds: string | null, keys: Record<string, string> }
    return { creds: raw.creds, keys: new Map(Object.entries(raw.keys)) }
  }

  function loadSession (instanceId: string): Promise<SessionData> {
    let loading = sessions.get(instanceId)
    if (loading === undefined) {
      loading = readSessionFile(instanceId)
      sessions.set(instanceId, loading)
    }
    return loading
  }

  /**
   * The store's own, frozen copy of a record, as the Redis store's are (they
   * are parsed from JSON): readers share it, and the caller's object is
   * neither frozen under it nor able to change what readers see.
   */
  const ownRecord = (instance: InstanceRecord): InstanceRecord => deepFreeze(structuredClone(instance))

  /** Updates the in-memory record at once (before any await), then writes it through. */
  async function applyPatch (current: InstanceRecord, patch: InstancePatch, nextSeq: boolean): Promise<InstanceRecord> {
    const updated = ownRecord({ ...current, ...patch, seq: nextSeq ? current.seq + 1 : current.seq, updatedAt: new Date().toISOString() })
    instances.set(current.id, updated)
    await writeJson(dirs.instances, current.id, updated)
    return updated
  }

  const persistSession = async (instanceId: string, session: SessionData): Promise<void> =>
    await writeJson(dirs.sessions, instanceId, { creds: session.creds, keys: Object.fromEntries(session.keys) })

  return {
    kind: 'file',

    async ping () {
      await readdir(root)
    },

    async close () {
      while (pendingWrites.size > 0) await Promise.allSettled([...pendingWrites])
      await releaseLock()
    },

    async claimSetting (name, value) {
      const kept = settings.get(name)
      if (kept !== undefined) return kept
      settings.set(name, value)
      await writeJson(dirs.settings, name, { name, value })
      return value
    },

    async createAccount (account) {
      accounts.set(account.id, account)
      tokens.set(account.tokenHash, { kind: 'account', accountId: account.id })
      await writeJson(dirs.accounts, account.id, account)
    },

    async listAccounts () {
      return [...accounts.values()]
    },

    async findTokenOwner (tokenHash) {
      return tokens.get(tokenHash) ?? null
    },

    async createInstance (instance, quota): Promise<CreateInstanceResult> {
      // Checks and index updates happen synchronously, so no concurrent call can interleave.
      const owned = instanceIdsByAccount.get(instance.accountId)
      if (owned?.has(instance.name) === true) return 'name_taken'
      if (tokens.has(instance.tokenHash)) return 'token_taken'
      if ((owned?.size ?? 0) >= quota) return 'quota_exceeded'
      const stored = ownRecord(instance)
      indexInstance(stored)
      try {
        await writeJson(dirs.instances, instance.id, stored)
      } catch (error) {
        unindexInstance(stored)
        throw error
      }
      return 'created'
    },

    async getInstance (instanceId) {
      return instances.get(instanceId) ?? null
    },

    async findInstanceByName (accountId, name) {
      const id = instanceIdsByAccount.get(accountId)?.get(name)
      return id === undefined ? null : instances.get(id) ?? null
    },

    async listInstances (accountId) {
      const found: InstanceRecord[] = []
      for (const id of instanceIdsByAccount.get(accountId)?.values() ?? []) {
        const instance = instances.get(id)
        if (instance !== undefined) found.push(instance)
      }
      return found
    },

    async listAllInstances () {
      return [...instances.values()]
    },

    async updateInstance (instanceId, patch: InstancePatch, options = {}) {
      const current = instances.get(instanceId)
      if (current === undefined) return null
      return await applyPatch(current, patch, options.nextSeq === true)
    },

    async updateInstanceIfUnchanged (instanceId, expected, patch) {
      const current = instances.get(instanceId)
      if (current === undefined) return null
      // The comparison and the in-memory update happen in one synchronous step, so no other call can interleave.
      for (const [field, value] of Object.entries(expected)) {
        if (JSON.stringify(current[field as keyof InstancePatch]) !== JSON.stringify(value)) return 'changed'
      }
      return await applyPatch(current, patch, false)
    },

    async deleteInstance (instanceId) {
      const instance = instances.get(instanceId)
      if (instance === undefined) return false
      unindexInstance(instance)
      sessions.delete(instanceId)
      sessionIds.delete(instanceId)
      await Promise.all([removeJson(dirs.instances, instanceId), removeJson(dirs.sessions, instanceId)])
      return true
    },

    async hasSession (instanceId) {
      return (await loadSession(instanceId)).creds !== null
    },

    async readSessionCreds (instanceId) {
      return (await loadSession(instanceId)).creds
    },

    async readSessionKeys (instanceId, keyNames) {
      const session = await loadSession(instanceId)
      const found = new Map<string, string>()
      for (const name of keyNames) {
        const value = session.keys.get(name)
        if (value !== undefined) found.set(name, value)
      }
      return found
    },

    async writeSession (instanceId, write: SessionWrite) {
      // A late write from a socket that is being torn down must not resurrect a deleted instance's session.
      if (!instances.has(instanceId)) return
      const session = await loadSession(instanceId)
      sessionIds.add(instanceId)
      if (write.creds !== undefined) session.creds = write.creds
      for (const [name, value] of Object.entries(write.keys ?? {})) {
        if (value === null) session.keys.delete(name)
        else session.keys.set(name, value)
      }
      await persistSession(instanceId, session)
    },

    async deleteSession (instanceId) {
      sessions.delete(instanceId)
      sessionIds.delete(instanceId)
      await removeJson(dirs.sessions, instanceId)
    }
  }
}

async function lockDataDir (root: string, dataDir: string, waitMs: number): Promise<() => Promise<void>> {
  const attempts = Math.max(0, Math.ceil(waitMs / 500))
  try {
    return await lockfile.lock(root, {
      lockfilePath: join(root, 'store.lock'),
      stale: STALE_LOCK_MS,
      retries: { retries: attempts, minTimeout: 500, maxTimeout: 500, factor: 1 },
      // Losing the lock means another process may be writing the same files: stop writing at once.
      onCompromised: (error) => { throw error }
    })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new Error(`DATA_DIR ${dataDir} is in use by another running process`)
    }
    throw error
  }
}

async function listJsonFiles (dir: string): Promise<string[]> {
  const names: string[] = []
  for (const entry of await readdir(dir)) {
    if (entry.endsWith(JSON_SUFFIX)) names.push(entry.slice(0, -JSON_SUFFIX.length))
    // A temp file left by a writer killed mid-write: the rename never happened, so the old file is intact.
    else await rm(join(dir, entry), { force: true })
  }
  return names
}

async function readRecords<T> (dir: string): Promise<T[]> {
  const ids = await listJsonFiles(dir)
  return await Promise.all(ids.map(async id => JSON.parse(await readFile(join(dir, id + JSON_SUFFIX), 'utf8')) as T))
}
