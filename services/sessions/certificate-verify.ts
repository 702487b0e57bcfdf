import { createRequire } from 'node:module'
import { Curve } from './baileys.js'

interface LibsignalCurve {
  verifySignature: (publicKey33: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
}

// libsignal's curve module is CommonJS without typings for this path; it is the
// same XEdDSA implementation Baileys uses.
const libsignalCurve = createRequire(import.meta.url)('libsignal/src/curve.js') as LibsignalCurve
const SIGNAL_KEY_TYPE = Buffer.from([5])

/**
 * Signatures already found valid. Verifying one costs ~7 ms of pure-JS CPU and
 * WhatsApp presents the same chain on every connection; the answer for the
 * same key, message and signature never changes, so it is remembered (only
 * successes, and only a few).
 */
const verified = new Set<string>()
const VERIFIED_LIMIT = 64

/**
 * Baileys 7.0.0-rc14 accepts any signature on WhatsApp's noise certificate
 * chain: its Curve.verify only catches exceptions, but libsignal reports a bad
 * signature by returning false. This replaces Curve.verify (a mutable export,
 * read at handshake time) with one that trusts libsignal's boolean, so a
 * server whose chain is not signed by the trusted root is refused.
 */
export function installStrictCertificateVerify (): void {
  Curve.verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
    const id = Buffer.concat([publicKey, signature, message]).toString('base64')
    if (verified.has(id)) return true
    let valid: boolean
    try {
      const key = publicKey.length === 33 ? publicKey : Buffer.concat([SIGNAL_KEY_TYPE, publicKey])
      valid = libsignalCurve.verifySignature(key, message, signature) === true
    } catch {
      valid = false
    }
    if (valid) {
      if (verified.size >= VERIFIED_LIMIT) verified.clear()
      verified.add(id)
    }
    return valid
  }
}
