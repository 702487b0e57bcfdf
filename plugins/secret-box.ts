import { join } from 'node:path'
import fp from 'fastify-plugin'
import { loadOrCreateSecret } from '../services/local-secrets.js'
import { createSecretBox, type SecretBox } from '../services/secret-box.js'

declare module 'fastify' {
  interface FastifyInstance {
    secretBox: SecretBox
  }
}

/** Replicas sharing a Redis must share ENCRYPTION_KEY; a single node can let the first start generate it. */
export default fp(async (app) => {
  let key = app.config.ENCRYPTION_KEY
  if (key === undefined) {
    const path = join(app.config.DATA_DIR, 'encryption-key')
    const secret = await loadOrCreateSecret(path)
    key = secret.value
    if (secret.created) app.log.info({ path }, 'generated an encryption key for secrets at rest')
  }
  app.decorate('secretBox', createSecretBox(key))
}, { name: 'secret-box', dependencies: ['config'] })
