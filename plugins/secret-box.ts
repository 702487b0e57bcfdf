import fp from 'fastify-plugin'
import { configuredOrLocalSecret } from '../services/local-secrets.js'
import { createSecretBox, type SecretBox } from '../services/secret-box.js'

declare module 'fastify' {
  interface FastifyInstance {
    secretBox: SecretBox
  }
}

/** Replicas sharing a Redis must share ENCRYPTION_KEY; a single node can let the first start generate it. */
export default fp(async (app) => {
  const key = await configuredOrLocalSecret(app.config.ENCRYPTION_KEY, app.config.DATA_DIR, 'encryption-key')
  if (key.created) app.log.info({ path: key.path }, 'generated an encryption key for secrets at rest')
  app.decorate('secretBox', createSecretBox(key.value))
}, { name: 'secret-box', dependencies: ['config'] })
