import fp from 'fastify-plugin'
import { configuredOrLocalSecret } from '../services/local-secrets.js'
import { createSecretBox, type SecretBox } from '../services/secret-box.js'

declare module 'fastify' {
  interface FastifyInstance {
    secretBox: SecretBox
  }
}

const FINGERPRINT_SETTING = 'encryption-key-fingerprint'

/**
 * Secrets at rest are sealed with ENCRYPTION_KEY, or with a key generated in
 * DATA_DIR on a single node's first start. The store keeps the fingerprint of
 * the first key used with it, and a process with another key refuses to start:
 * a replica with the wrong key, or a changed key, would otherwise seal secrets
 * nobody else can open and fail on every secret sealed before.
 */
export default fp(async (app) => {
  const key = await configuredOrLocalSecret(app.config.ENCRYPTION_KEY, app.config.DATA_DIR, 'encryption-key')
  if (key.created) app.log.info({ path: key.path }, 'generated an encryption key for secrets at rest')
  const secretBox = createSecretBox(key.value)
  if (await app.store.claimSetting(FINGERPRINT_SETTING, secretBox.fingerprint) !== secretBox.fingerprint) {
    throw new Error(`the encryption key (${key.path === null ? 'ENCRYPTION_KEY' : key.path}) is not the one this store's secrets are sealed with: ` +
      'every replica sharing a store needs the same ENCRYPTION_KEY')
  }
  app.decorate('secretBox', secretBox)
}, { name: 'secret-box', dependencies: ['config', 'store'] })
