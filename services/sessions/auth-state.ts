import {
  type AuthenticationCreds,
  type AuthenticationState,
  BufferJSON,
  initAuthCreds,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap
} from './baileys.js'
import type { SessionWrite } from '../../stores/store.js'

/** The narrow storage a WhatsApp auth state needs; services/sessions/session-gate.ts provides it. */
export interface SessionStorage {
  readCreds: () => Promise<string | null>
  readKeys: (keyNames: string[]) => Promise<Map<string, string>>
  /** Resolves once the batch is durable; batches are applied in call order. */
  write: (write: SessionWrite) => Promise<void>
}

export interface StoredAuthState {
  state: AuthenticationState
  /** Persists the current creds; Baileys mutates them in place before emitting creds.update. */
  saveCreds: () => Promise<void>
}

const encode = (value: unknown): string => JSON.stringify(value, BufferJSON.replacer)
const decode = (value: string): unknown => JSON.parse(value, BufferJSON.reviver)
const keyName = (type: string, id: string): string => `${type}-${id}`

/**
 * Baileys' AuthenticationState on top of our stores, in place of
 * useMultiFileAuthState (which Baileys itself says is not for production).
 * Every keys.set is one atomic batch and is durable before it resolves, so
 * Baileys never moves on from a write that could still be lost.
 */
export async function loadAuthState (storage: SessionStorage, options: { fresh: boolean }): Promise<StoredAuthState> {
  const saved = options.fresh ? null : await storage.readCreds()
  const creds: AuthenticationCreds = saved === null ? initAuthCreds() : decode(saved) as AuthenticationCreds

  const state: AuthenticationState = {
    creds,
    keys: {
      async get<T extends keyof SignalDataTypeMap> (type: T, ids: string[]) {
        const found = await storage.readKeys(ids.map(id => keyName(type, id)))
        const result: Record<string, SignalDataTypeMap[T]> = {}
        for (const id of ids) {
          const raw = found.get(keyName(type, id))
          if (raw === undefined) continue
          let value = decode(raw)
          if (type === 'app-state-sync-key') value = proto.Message.AppStateSyncKeyData.fromObject(value as object)
          result[id] = value as SignalDataTypeMap[T]
        }
        return result
      },
      async set (data: SignalDataSet) {
        const keys: Record<string, string | null> = {}
        for (const [type, entries] of Object.entries(data)) {
          for (const [id, value] of Object.entries(entries ?? {})) {
            keys[keyName(type, id)] = value == null ? null : encode(value)
          }
        }
        await storage.write({ keys })
      }
    }
  }

  return {
    state,
    saveCreds: async () => { await storage.write({ creds: encode(creds) }) }
  }
}
