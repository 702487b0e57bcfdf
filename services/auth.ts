import type { Store } from '../stores/store.js'
import { errors } from './errors.js'
import { hashToken } from './tokens.js'

export type Caller =
  | { kind: 'admin' }
  | { kind: 'account', accountId: string }
  | { kind: 'instance', accountId: string, instanceId: string, instanceName: string }

export type AccountCaller = Extract<Caller, { kind: 'account' }>
export type TenantCaller = Exclude<Caller, { kind: 'admin' }>

/** Who may call a route: `tenant` is a TokenAccount or a TokenInstance. */
export type AuthPolicy = 'admin' | 'account' | 'tenant'

/** The caller of a route whose policy admitted TokenAccounts and TokenInstances. */
export function asTenant (caller: Caller | null): TenantCaller {
  if (caller === null || caller.kind === 'admin') throw errors.invalidToken()
  return caller
}

/** The caller of a route whose policy admitted TokenAccounts only. */
export function asAccount (caller: Caller | null): AccountCaller {
  if (caller === null || caller.kind !== 'account') throw errors.invalidToken()
  return caller
}

export interface AuthService {
  /** The owner of a token known without a store lookup (the admin, a remembered account), else undefined. */
  remembered: (tokenHash: string) => Caller | undefined
  /** Resolves the SHA-256 of a presented token to its owner, or null for an unknown token. */
  identify: (tokenHash: string) => Promise<Caller | null>
  /** Throws the documented error when the caller may not use a route under `policy`. */
  authorize: (caller: Caller | null, policy: AuthPolicy) => asserts caller is Caller
  /**
   * A TokenInstance may only name its own instance. Decided from the token
   * alone, before any lookup, so the answer reveals nothing about other names.
   */
  assertInstanceScope: (caller: TenantCaller, instanceName: string) => void
}

/** Account tokens remembered in process; bounded, and cleared whole when full. */
const ACCOUNT_CACHE_LIMIT = 10_000

export function createAuthService ({ store, adminToken }: { store: Store, adminToken: string }): AuthService {
  // An account token never changes owner and cannot be revoked (there is no
  // account deletion), so it is safe to remember: this saves a store round trip
  // on most calls. Instance tokens die with their instance, on any replica, so
  // they are always looked up. Revoking accounts would have to clear this.
  // Digests are compared as plain strings, the admin's included: timing can
  // only reveal how much of a SHA-256 digest matched, and choosing a digest's
  // bytes would take a preimage.
  const adminHash = hashToken(adminToken)
  const admin: Caller = { kind: 'admin' }
  const accounts = new Map<string, Caller>()

  const remembered = (tokenHash: string): Caller | undefined => tokenHash === adminHash ? admin : accounts.get(tokenHash)

  return {
    remembered,

    async identify (tokenHash) {
      const known = remembered(tokenHash)
      if (known !== undefined) return known
      const owner = await store.findTokenOwner(tokenHash)
      if (owner?.kind === 'account') {
        if (accounts.size >= ACCOUNT_CACHE_LIMIT) accounts.clear()
        accounts.set(tokenHash, owner)
      }
      return owner
    },

    authorize (caller, policy) {
      if (policy === 'account') asAccount(caller)
      else if (policy === 'tenant') asTenant(caller)
      else if (caller?.kind !== 'admin') throw errors.invalidToken()
    },

    assertInstanceScope (caller, instanceName) {
      if (caller.kind === 'instance' && caller.instanceName !== instanceName) throw errors.instanceTokenMismatch()
    }
  }
}
