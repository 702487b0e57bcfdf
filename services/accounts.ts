import { randomUUID } from 'node:crypto'
import type { Store } from '../stores/store.js'
import { generateToken, hashToken } from './tokens.js'

export type AccountService = ReturnType<typeof createAccountService>

export function createAccountService ({ store }: { store: Store }) {
  return {
    /** The token is returned here once and only its hash is kept. */
    async create (name: string) {
      const token = generateToken()
      const account = { id: randomUUID(), name, tokenHash: hashToken(token), createdAt: new Date().toISOString() }
      await store.createAccount(account)
      return { id: account.id, name: account.name, token }
    },

    async list () {
      const accounts = await store.listAccounts()
      return accounts
        .map(({ id, name, createdAt }) => ({ id, name, createdAt }))
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    }
  }
}
