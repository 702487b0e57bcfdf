import type { Redis } from 'ioredis'
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

export interface RedisStoreOptions {
  /** A connected client owned by the caller (plugins/redis.ts closes it). */
  redis: Redis
  /** Namespace for every key, so tests and several deployments can share one Redis. */
  prefix?: string
}

/*
 * Multi-key writes whose outcome depends on what is already stored run as Lua
 * scripts: Redis executes a script atomically, so two replicas creating the same
 * name, or a late session write racing a delete, can never interleave.
 */

// Every field of an instance hash holds a JSON value, so the hash is sent back as one JSON object:
// one string to read and parse instead of two per field, on the reads every request makes.
const INSTANCE_AS_JSON = `
local function instanceAsJson (key)
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then return false end
  local members = {}
  for i = 1, #fields, 2 do members[#members + 1] = '"' .. fields[i] .. '":' .. fields[i + 1] end
  return '{' .. table.concat(members, ',') .. '}'
end
`

// KEYS: account's name index, token key, instance hash, all-instances set.
// ARGV: name, id, quota, token owner JSON, then field/value pairs of the instance hash.
const CREATE_INSTANCE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'name_taken' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'token_taken' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 'quota_exceeded' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[4], ARGV[2])
return 'created'
`

// KEYS: instance hash. ARGV: '1' to raise the event counter (else '0'), the number of expected
// field/value pairs, those pairs, then the pairs to set. Never recreates a deleted instance; answers
// 'changed' when an expected field holds something else (compare-and-set), and the check, the write
// and the counter (rising in the same step as the change it numbers) happen in one atomic step.
const UPDATE_INSTANCE = `${INSTANCE_AS_JSON}
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local expected = tonumber(ARGV[2])
for i = 3, 2 + expected * 2, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 'changed' end
end
for i = 3 + expected * 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[1] == '1' then redis.call('HINCRBY', KEYS[1], 'seq', 1) end
return instanceAsJson(KEYS[1])
`

// KEYS: instance hash, session hash. ARGV: number of pairs to set, the pairs, then names to delete.
// The existence check keeps a late write from a closing socket from resurrecting a deleted session.
const WRITE_SESSION = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local count = tonumber(ARGV[1])
for i = 2, 1 + count * 2, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 2 + count * 2, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
return 1
`

// KEYS: instance hash.
const GET_INSTANCE = `${INSTANCE_AS_JSON}
return instanceAsJson(KEYS[1])
`

// KEYS: the account's name index. ARGV: name, instance key prefix. One round trip instead of two
// on the hottest read; the instance key is derived in the script, so this store is not for Redis Cluster.
const FIND_INSTANCE = `${INSTANCE_AS_JSON}
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return instanceAsJson(ARGV[2] .. id)
`

const CREDS_FIELD = 'creds'

type ScriptedRedis = Redis & {
  waCreateInstance: (...args: Array<string | number>) => Promise<CreateInstanceResult>
  waUpdateInstance: (...args: Array<string | number>) => Promise<string | null>
  waWriteSession: (...args: Array<string | number>) => Promise<number>
  waGetInstance: (instanceKey: string) => Promise<string | null>
  waFindInstance: (namesKey: string, name: string, instancePrefix: string) => Promise<string | null>
}

/** The key of an instance's record: other Redis-backed parts check with it that an instance still exists. */
export const redisInstanceKey = (prefix: string, instanceId: string): string => `${prefix}instance:${instanceId}`

export function createRedisStore (options: RedisStoreOptions): Store {
  const prefix = options.prefix ?? 'wa:'
  const redis = options.redis as ScriptedRedis
  if (typeof redis.waCreateInstance !== 'function') {
    redis.defineCommand('waCreateInstance', { numberOfKeys: 4, lua: CREATE_INSTANCE })
    redis.defineCommand('waUpdateInstance', { numberOfKeys: 1, lua: UPDATE_INSTANCE })
    redis.defineCommand('waWriteSession', { numberOfKeys: 2, lua: WRITE_SESSION })
    redis.defineCommand('waGetInstance', { numberOfKeys: 1, lua: GET_INSTANCE })
    redis.defineCommand('waFindInstance', { numberOfKeys: 1, lua: FIND_INSTANCE })
  }

  const parseInstance = createInstanceParser()

  const key = {
    setting: (name: string) => `${prefix}setting:${name}`,
    account: (id: string) => `${prefix}account:${id}`,
    accounts: `${prefix}accounts`,
    token: (hash: string) => `${prefix}token:${hash}`,
    instance: (id: string) => redisInstanceKey(prefix, id),
    instances: `${prefix}instances`,
    instanceNames: (accountId: string) => `${prefix}account:${accountId}:instances`,
    session: (id: string) => `${prefix}session:${id}`
  }

  async function readInstances (ids: string[]): Promise<InstanceRecord[]> {
    if (ids.length === 0) return []
    const pipeline = redis.pipeline()
    // defineCommand gives pipelines the scripts too.
    for (const id of ids) void (pipeline as unknown as ScriptedRedis).waGetInstance(key.instance(id))
    const replies = await pipeline.exec() ?? []
    const records: InstanceRecord[] = []
    for (const [error, json] of replies) {
      if (error !== null) throw error
      const record = parseInstance(json as string | null)
      if (record !== null) records.push(record)
    }
    return records
  }

  async function updateIfUnchanged (instanceId: string, expected: InstancePatch, patch: InstancePatch, nextSeq: boolean): Promise<string | null> {
    const expectedFields = encodeFields(expected)
    const fields = encodeFields({ ...patch, updatedAt: new Date().toISOString() })
    return await redis.waUpdateInstance(key.instance(instanceId), nextSeq ? '1' : '0', expectedFields.length / 2, ...expectedFields, ...fields)
  }

  return {
    kind: 'redis',

    async ping () {
      await redis.ping()
    },

    async close () {
      // Every command is acknowledged before its promise resolves: nothing is buffered here.
    },

    async claimSetting (name, value) {
      // A kept value is never changed, so reading it after a refused SET NX cannot race.
      await redis.set(key.setting(name), value, 'NX')
      return await redis.get(key.setting(name)) ?? value
    },

    async createAccount (account) {
      const owner: TokenOwner = { kind: 'account', accountId: account.id }
      await redis.multi()
        .set(key.account(account.id), JSON.stringify(account))
        .sadd(key.accounts, account.id)
        .set(key.token(account.tokenHash), JSON.stringify(owner))
        .exec()
    },

    async listAccounts () {
      const ids = await redis.smembers(key.accounts)
      if (ids.length === 0) return []
      const values = await redis.mget(ids.map(id => key.account(id)))
      return values.filter((value): value is string => value !== null).map(value => JSON.parse(value) as AccountRecord)
    },

    async findTokenOwner (tokenHash) {
      const value = await redis.get(key.token(tokenHash))
      return value === null ? null : JSON.parse(value) as TokenOwner
    },

    async createInstance (instance, quota) {
      const owner: TokenOwner = { kind: 'instance', accountId: instance.accountId, instanceId: instance.id, instanceName: instance.name }
      return await redis.waCreateInstance(
        key.instanceNames(instance.accountId), key.token(instance.tokenHash), key.instance(instance.id), key.instances,
        instance.name, instance.id, quota, JSON.stringify(owner), ...encodeFields(instance)
      )
    },

    async getInstance (instanceId) {
      return parseInstance(await redis.waGetInstance(key.instance(instanceId)))
    },

    async findInstanceByName (accountId, name) {
      return parseInstance(await redis.waFindInstance(key.instanceNames(accountId), name, key.instance('')))
    },

    async listInstances (accountId) {
      return await readInstances(Object.values(await redis.hgetall(key.instanceNames(accountId))))
    },

    async listAllInstances () {
      return await readInstances(await redis.smembers(key.instances))
    },

    async updateInstance (instanceId, patch: InstancePatch, options = {}) {
      // Nothing is expected, so the answer is never 'changed'.
      return parseInstance(await updateIfUnchanged(instanceId, {}, patch, options.nextSeq === true))
    },

    async updateInstanceIfUnchanged (instanceId, expected, patch) {
      const reply = await updateIfUnchanged(instanceId, expected, patch, false)
      return reply === 'changed' ? reply : parseInstance(reply)
    },

    async deleteInstance (instanceId) {
      const instance = parseInstance(await redis.waGetInstance(key.instance(instanceId)))
      if (instance === null) return false
      // One transaction, so no reader ever sees the token without its instance or the reverse.
      await redis.multi()
        .del(key.instance(instanceId), key.session(instanceId), key.token(instance.tokenHash))
        .hdel(key.instanceNames(instance.accountId), instance.name)
        .srem(key.instances, instanceId)
        .exec()
      return true
    },

    async hasSession (instanceId) {
      return await redis.hexists(key.session(instanceId), CREDS_FIELD) === 1
    },

    async readSessionCreds (instanceId) {
      return await redis.hget(key.session(instanceId), CREDS_FIELD)
    },

    async readSessionKeys (instanceId, keyNames) {
      const found = new Map<string, string>()
      if (keyNames.length === 0) return found
      const values = await redis.hmget(key.session(instanceId), ...keyNames)
      keyNames.forEach((name, index) => {
        const value = values[index]
        if (value != null) found.set(name, value)
      })
      return found
    },

    async writeSession (instanceId, write: SessionWrite) {
      const setPairs: string[] = []
      const deletions: string[] = []
      if (write.creds !== undefined) setPairs.push(CREDS_FIELD, write.creds)
      for (const [name, value] of Object.entries(write.keys ?? {})) {
        if (value === null) deletions.push(name)
        else setPairs.push(name, value)
      }
      if (setPairs.length === 0 && deletions.length === 0) return
      await redis.waWriteSession(key.instance(instanceId), key.session(instanceId), setPairs.length / 2, ...setPairs, ...deletions)
    },

    async deleteSession (instanceId) {
      await redis.del(key.session(instanceId))
    }
  }
}

function encodeFields (record: object): string[] {
  const pairs: string[] = []
  for (const [field, value] of Object.entries(record)) {
    if (value !== undefined) pairs.push(field, JSON.stringify(value))
  }
  return pairs
}

/** Parsed records kept per store; past this, the oldest goes first. */
const PARSED_INSTANCE_LIMIT = 10_000

/**
 * Parses instance records, each distinct JSON once. A status poll reads the
 * same record again and again, and parsing it was a sixth of such a request.
 * A record is never changed in place (a change writes a new one, so new JSON),
 * which lets one parse serve every read; the records are frozen, so a caller
 * that tried to change one would fail loudly instead of changing every reader's.
 */
function createInstanceParser (): (json: string | null) => InstanceRecord | null {
  const parsed = new Map<string, InstanceRecord>()
  return (json) => {
    if (json === null) return null
    const known = parsed.get(json)
    if (known !== undefined) return known
    const instance = JSON.parse(json) as Partial<InstanceRecord>
    if (instance.id === undefined) return null
    const record = deepFreeze(instance as InstanceRecord)
    if (parsed.size >= PARSED_INSTANCE_LIMIT) parsed.delete(parsed.keys().next().value as string)
    parsed.set(json, record)
    return record
  }
}
