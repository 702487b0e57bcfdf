// Test-only overrides on the Baileys module instance the client uses (docs §2, pitfall 1).
// They only take effect on the same @whiskeysockets/baileys file that the code under test imports.
import { Curve, WA_CERT_DETAILS } from '@whiskeysockets/baileys'
import { installStrictCertificateVerify } from '../../../services/sessions/certificate-verify.js'

/** Makes the client trust certificate chains rooted at `rootPublic`. Returns a restore function. */
export function installTestTrustRoot(rootPublic: Buffer): () => void {
  if (rootPublic.length !== 32) {
    throw new Error(`trust root public key must be 32 bytes, got ${rootPublic.length}`)
  }
  const previous = WA_CERT_DETAILS.PUBLIC_KEY
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootPublic)
  return () => {
    WA_CERT_DETAILS.PUBLIC_KEY = previous
  }
}

/**
 * rc14's Curve.verify returns true for any signature (libsignal returns false instead of throwing),
 * so the client would accept any chain and any ADV account signature. The service's strict verify
 * makes those checks real, which is how tests prove the fake server's signatures are correct; this
 * installs it for raw-Baileys tests and gives back the original.
 */
export function installStrictCurveVerify(): () => void {
  const previous = Curve.verify
  installStrictCertificateVerify()
  return () => {
    Curve.verify = previous
  }
}
