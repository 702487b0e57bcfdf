import { randomUUID } from 'node:crypto'
import type { AccountRecord, InstanceRecord } from '../../stores/store.js'

export function accountRecord (overrides: Partial<AccountRecord> = {}): AccountRecord {
  return { id: randomUUID(), name: 'acme', tokenHash: randomUUID(), createdAt: new Date().toISOString(), ...overrides }
}

export function instanceRecord (accountId: string, name: string, overrides: Partial<InstanceRecord> = {}): InstanceRecord {
  const now = new Date().toISOString()
  return {
    id: randomUUID(),
    accountId,
    name,
    tokenHash: randomUUID(),
    createdAt: now,
    updatedAt: now,
    connection: { state: 'disconnected', detail: null, numberJid: null },
    profile: { name: null, pictureUrl: null, isBusiness: false, businessName: null },
    proxy: null,
    webhooks: [],
    desired: 'offline',
    seq: 0,
    webhookSecretSealed: null,
    ...overrides
  }
}
