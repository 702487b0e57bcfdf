// Client-side auth fixtures for tests that drive a real Baileys socket against the fake server.
import {
  initAuthCreds,
  type AuthenticationCreds,
  type AuthenticationState,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore
} from '@whiskeysockets/baileys'

/**
 * Fresh creds that Baileys treats as a saved session: it logs in (instead of registering) as soon
 * as `creds.me` is set, whatever `registered` says (docs §6).
 */
export function savedSessionCreds(jid = '5511999999999:1@s.whatsapp.net'): AuthenticationCreds {
  const creds = initAuthCreds()
  creds.me = { id: jid, name: 'Test' }
  return creds
}

/** An auth state kept in memory only; Baileys updates `state.creds` in place. */
export function memoryAuthState(creds: AuthenticationCreds = initAuthCreds()): AuthenticationState {
  const store = new Map<string, Map<string, unknown>>()
  const keys: SignalKeyStore = {
    get<T extends keyof SignalDataTypeMap>(type: T, ids: string[]) {
      const bucket = store.get(type)
      const found: { [id: string]: SignalDataTypeMap[T] } = {}
      for (const id of ids) {
        const value = bucket?.get(id)
        if (value !== undefined) {
          found[id] = value as SignalDataTypeMap[T]
        }
      }
      return found
    },
    set(data: SignalDataSet) {
      for (const [type, entries] of Object.entries(data)) {
        let bucket = store.get(type)
        if (!bucket) {
          bucket = new Map()
          store.set(type, bucket)
        }
        for (const [id, value] of Object.entries(entries ?? {})) {
          if (value === null || value === undefined) {
            bucket.delete(id)
          } else {
            bucket.set(id, value)
          }
        }
      }
    },
    clear() {
      store.clear()
    }
  }
  return { creds, keys }
}
