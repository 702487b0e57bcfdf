import { BufferJSON, initAuthCreds } from '@whiskeysockets/baileys'
import type { FastifyInstance } from 'fastify'

/**
 * Stores the creds of a device that was paired before (doc §6: only creds.me
 * decides login versus registration), as a previous process would have left them.
 */
export async function seedSavedSession (app: FastifyInstance, accountId: string, name: string, jid = '5511999999999:1@s.whatsapp.net'): Promise<void> {
  const instance = await app.store.findInstanceByName(accountId, name)
  if (instance === null) throw new Error(`no instance ${name}`)
  const creds = { ...initAuthCreds(), me: { id: jid, name: 'Test' } }
  await app.store.writeSession(instance.id, { creds: JSON.stringify(creds, BufferJSON.replacer) })
}
