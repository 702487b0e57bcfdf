// The forged noise certificate chain (docs/whatsapp-test-server.md §5).
import { proto } from '@whiskeysockets/baileys'
import { generateKeyPair, signXEdDSA, type KeyPair } from './crypto.js'

const HOUR_S = 3600
const YEAR_S = 365 * 24 * HOUR_S

/**
 * Builds `CertChain{leaf, intermediate}`: root signs the intermediate, the intermediate signs a
 * leaf naming the server's static noise key. Signing is slow in pure JS, so servers forge this
 * once at start and reuse the bytes for every connection.
 */
export function forgeCertChain(root: KeyPair, serverStaticPublic: Buffer, nowMs = Date.now()): Buffer {
  const now = Math.floor(nowMs / 1000)
  const notBefore = now - HOUR_S
  const notAfter = now + YEAR_S
  const intermediate = generateKeyPair()

  const intermediateDetails = proto.CertChain.NoiseCertificate.Details.encode({
    serial: 1,
    // Must be set explicitly: protobufjs omits unset fields and the client then decodes null,
    // which fails its `issuerSerial === 0` check ("certification match failed").
    issuerSerial: 0,
    key: intermediate.public,
    notBefore,
    notAfter
  }).finish()

  const leafDetails = proto.CertChain.NoiseCertificate.Details.encode({
    serial: 2,
    issuerSerial: 1,
    key: serverStaticPublic,
    notBefore,
    notAfter
  }).finish()

  const chain = proto.CertChain.encode({
    intermediate: { details: intermediateDetails, signature: signXEdDSA(root.private, intermediateDetails) },
    leaf: { details: leafDetails, signature: signXEdDSA(intermediate.private, leafDetails) }
  }).finish()
  return Buffer.from(chain)
}
