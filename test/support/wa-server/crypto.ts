// Curve25519 / XEdDSA / AES-GCM / HKDF primitives of the fake WhatsApp server.
// Deliberately independent of Baileys' own `Curve` helpers: rc14's Curve.verify accepts any
// signature (see docs/whatsapp-test-server.md §2), so a check built on it would prove nothing.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject
} from 'node:crypto'
import { createRequire } from 'node:module'

/** 32-byte raw X25519 keys, usable both for DH and as XEdDSA signing keys. */
export interface KeyPair {
  public: Buffer
  private: Buffer
}

interface LibsignalCurve {
  calculateSignature(privKey: Buffer, message: Buffer): Buffer
  verifySignature(pubKey: Buffer, message: Buffer, signature: Buffer, isInit?: boolean): boolean
}

// libsignal ships as CommonJS without typings for its sub-paths; it is the XEdDSA implementation
// WhatsApp clients interoperate with, so we use it rather than re-deriving the Edwards conversion.
const requireCjs = createRequire(import.meta.url)
const libsignalCurve = requireCjs('libsignal/src/curve.js') as LibsignalCurve

const SIGNAL_KEY_TYPE = Buffer.from([0x05])
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

function clamp(priv32: Uint8Array): Buffer {
  const k = Buffer.from(priv32)
  k[0] = k[0]! & 248
  k[31] = (k[31]! & 127) | 64
  return k
}

function privateKeyObject(priv32: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, priv32]), format: 'der', type: 'pkcs8' })
}

function publicKeyObject(pub32: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, pub32]), format: 'der', type: 'spki' })
}

/**
 * Derives the key pair of a fixed private key. The private key is returned clamped so that the
 * X25519 public key and the XEdDSA signing scalar are unambiguously the same key, which lets a
 * child process share a trust root by passing only the 32 private bytes.
 */
export function keyPairFromPrivate(priv32: Buffer): KeyPair {
  if (priv32.length !== 32) {
    throw new Error(`expected a 32-byte private key, got ${priv32.length} bytes`)
  }
  const priv = clamp(priv32)
  const spki = createPublicKey(privateKeyObject(priv)).export({ format: 'der', type: 'spki' })
  return { private: priv, public: Buffer.from(spki.subarray(SPKI_X25519_PREFIX.length)) }
}

export function generateKeyPair(): KeyPair {
  return keyPairFromPrivate(randomBytes(32))
}

/** A fresh XEdDSA/X25519 key pair to act as the root of the forged noise certificate chain. */
export function generateTrustRoot(): KeyPair {
  return generateKeyPair()
}

export function sharedKey(priv: Uint8Array, pub: Uint8Array): Buffer {
  return diffieHellman({ privateKey: privateKeyObject(priv), publicKey: publicKeyObject(pub) })
}

/** XEdDSA signature (Signal's curve25519 signatures) with a raw 32-byte private key. */
export function signXEdDSA(priv32: Uint8Array, message: Uint8Array): Buffer {
  return libsignalCurve.calculateSignature(Buffer.from(priv32), Buffer.from(message))
}

/**
 * Strict XEdDSA verification: true only when libsignal's boolean says the signature is valid.
 * Accepts the raw 32-byte key or Signal's 33-byte 0x05-prefixed form, as Baileys' callers do.
 */
export function verifyXEdDSA(publicKey32: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    let key = Buffer.from(publicKey32)
    if (key.length === 33 && key[0] === SIGNAL_KEY_TYPE[0]) {
      key = key.subarray(1)
    }
    if (key.length !== 32 || signature?.length !== 64 || !message) {
      return false
    }
    // The 0x05 prefix keeps libsignal from logging its "expected 33 bytes" warning. Never pass
    // the fourth argument: with isInit=true libsignal returns true without checking anything.
    const result = libsignalCurve.verifySignature(
      Buffer.concat([SIGNAL_KEY_TYPE, key]),
      Buffer.from(message),
      Buffer.from(signature)
    )
    return result === true
  } catch {
    return false
  }
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256')
  for (const part of parts) {
    h.update(part)
  }
  return h.digest()
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/** RFC 5869 HKDF-SHA256, info = "", 64 bytes, split in two 32-byte halves (noise MixKey/Split). */
export function hkdfSplit(ikm: Uint8Array, salt: Uint8Array): [Buffer, Buffer] {
  const prk = hmacSha256(salt, ikm)
  const t1 = hmacSha256(prk, Buffer.from([0x01]))
  const t2 = hmacSha256(prk, Buffer.concat([t1, Buffer.from([0x02])]))
  return [t1, t2]
}

function gcmIv(counter: number): Buffer {
  const iv = Buffer.alloc(12)
  iv.writeUInt32BE(counter >>> 0, 8)
  return iv
}

/** AES-256-GCM with WhatsApp's counter nonce; the 16-byte tag is appended. */
export function aesGcmEncrypt(key: Uint8Array, counter: number, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, gcmIv(counter))
  cipher.setAAD(aad)
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
}

export function aesGcmDecrypt(key: Uint8Array, counter: number, aad: Uint8Array, ciphertext: Uint8Array): Buffer {
  if (ciphertext.length < 16) {
    throw new Error('ciphertext shorter than the GCM tag')
  }
  const decipher = createDecipheriv('aes-256-gcm', key, gcmIv(counter))
  decipher.setAAD(aad)
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16))
  return Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - 16)), decipher.final()])
}
