import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto'

export interface SecretBox {
  seal: (plaintext: string) => string
  open: (sealed: string) => string
  /** Names the key without revealing it: equal for equal keys, so processes can check they share one. */
  fingerprint: string
}

const VERSION = 'v1'

/**
 * AES-256-GCM for secrets kept at rest (proxy passwords, webhook authorization
 * values). The key is derived from ENCRYPTION_KEY, so every replica given the
 * same value can read what another sealed.
 */
export function createSecretBox (secret: string): SecretBox {
  const key = createHash('sha256').update(`wa-gateway:${secret}`).digest()
  return {
    fingerprint: createHmac('sha256', key).update('wa-gateway key fingerprint').digest('hex'),
    seal (plaintext) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ciphertext.toString('base64')].join(':')
    },
    open (sealed) {
      const [version, iv, tag, ciphertext] = sealed.split(':')
      if (version !== VERSION || iv === undefined || tag === undefined || ciphertext === undefined) {
        throw new Error('Unrecognised sealed secret')
      }
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'))
      decipher.setAuthTag(Buffer.from(tag, 'base64'))
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64')), decipher.final()]).toString('utf8')
    }
  }
}
