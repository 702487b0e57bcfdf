// The phone's side of QR pairing and the checks a real server makes on a registration
// (docs/whatsapp-test-server.md §6, §8.2, §8.3).
import { getBinaryNodeChild, proto, type BinaryNode } from '@whiskeysockets/baileys'
import { randomBytes } from 'node:crypto'
import { hmacSha256, signXEdDSA, verifyXEdDSA, type KeyPair } from './crypto.js'

const ADV_ACCOUNT_SIGNATURE_PREFIX = Buffer.from([6, 0])
const ADV_DEVICE_SIGNATURE_PREFIX = Buffer.from([6, 1])
const SIGNAL_KEY_TYPE = Buffer.from([5])

export interface PairingQr {
  ref: string
  noisePublic: Buffer
  identityPublic: Buffer
  advSecret: Buffer
  platformId: string
}

/** Accepts the full `https://wa.me/settings/linked_devices#…` string or just the part after `#`. */
export function parsePairingQr(qr: string): PairingQr {
  const data = qr.includes('#') ? qr.slice(qr.indexOf('#') + 1) : qr
  const [ref, noise, identity, adv, platformId] = data.split(',')
  if (!ref || !noise || !identity || !adv) {
    throw new Error(`not a WhatsApp pairing QR: ${JSON.stringify(qr.slice(0, 80))}`)
  }
  return {
    ref,
    noisePublic: Buffer.from(noise, 'base64'),
    identityPublic: Buffer.from(identity, 'base64'),
    advSecret: Buffer.from(adv, 'base64'),
    platformId: platformId ?? ''
  }
}

export interface DeviceIdentityOffer {
  /** Encoded `ADVSignedDeviceIdentityHMAC`, the content of `<device-identity>` in pair-success. */
  container: Buffer
  /** Encoded `ADVDeviceIdentity` the client must counter-sign. */
  deviceDetails: Buffer
  accountSignature: Buffer
  keyIndex: number
}

/** What the phone sends in `<pair-success>`: the account key vouches for the new device's identity key. */
export function offerDeviceIdentity(params: {
  advSecret: Buffer
  identityPublic: Buffer
  account: KeyPair
  keyIndex?: number
}): DeviceIdentityOffer {
  const keyIndex = params.keyIndex ?? 1
  const deviceDetails = Buffer.from(
    proto.ADVDeviceIdentity.encode({
      rawId: randomBytes(4).readUInt32BE(0),
      timestamp: Math.floor(Date.now() / 1000),
      // The client calls keyIndex.toString(), so it must be present.
      keyIndex,
      accountType: proto.ADVEncryptionType.E2EE,
      deviceType: proto.ADVEncryptionType.E2EE
    }).finish()
  )
  const accountSignature = signXEdDSA(
    params.account.private,
    Buffer.concat([ADV_ACCOUNT_SIGNATURE_PREFIX, deviceDetails, params.identityPublic])
  )
  const signed = Buffer.from(
    proto.ADVSignedDeviceIdentity.encode({
      details: deviceDetails,
      accountSignatureKey: params.account.public,
      accountSignature
    }).finish()
  )
  const container = Buffer.from(
    proto.ADVSignedDeviceIdentityHMAC.encode({ details: signed, hmac: hmacSha256(params.advSecret, signed) }).finish()
  )
  return { container, deviceDetails, accountSignature, keyIndex }
}

/**
 * Checks the client's `<pair-device-sign>` answer: it must echo our details and account
 * signature and add a valid device signature by its identity key. Returns a reason or undefined.
 */
export function checkPairDeviceSign(
  reply: BinaryNode,
  offer: DeviceIdentityOffer,
  identityPublic: Buffer,
  accountPublic: Buffer
): string | undefined {
  if (reply.attrs.type !== 'result') {
    return `pair-success answered with type=${reply.attrs.type ?? '(none)'}`
  }
  const identityNode = getBinaryNodeChild(getBinaryNodeChild(reply, 'pair-device-sign'), 'device-identity')
  if (!identityNode || !(identityNode.content instanceof Uint8Array)) {
    return 'pair-device-sign/device-identity missing'
  }
  if (identityNode.attrs['key-index'] !== String(offer.keyIndex)) {
    return `key-index ${identityNode.attrs['key-index'] ?? '(none)'} != ${offer.keyIndex}`
  }
  let signed: proto.ADVSignedDeviceIdentity
  try {
    signed = proto.ADVSignedDeviceIdentity.decode(identityNode.content)
  } catch (err) {
    return `undecodable ADVSignedDeviceIdentity: ${(err as Error).message}`
  }
  if (!signed.details || !Buffer.from(signed.details).equals(offer.deviceDetails)) {
    return 'device details not echoed verbatim'
  }
  if (!signed.accountSignature || !Buffer.from(signed.accountSignature).equals(offer.accountSignature)) {
    return 'account signature not echoed verbatim'
  }
  if (signed.accountSignatureKey?.length) {
    return 'accountSignatureKey should be omitted from the reply'
  }
  const deviceMessage = Buffer.concat([ADV_DEVICE_SIGNATURE_PREFIX, offer.deviceDetails, identityPublic, accountPublic])
  if (!signed.deviceSignature || !verifyXEdDSA(identityPublic, deviceMessage, signed.deviceSignature)) {
    return 'device signature invalid'
  }
  return undefined
}

/** A registration must carry a signed pre-key signed by the identity key it announces. */
export function checkRegistrationPayload(data: proto.ClientPayload.IDevicePairingRegistrationData): string | undefined {
  const { eIdent, eSkeyVal, eSkeySig } = data
  if (!eIdent || eIdent.length !== 32) {
    return 'eIdent missing or not 32 bytes'
  }
  if (!eSkeyVal || eSkeyVal.length !== 32) {
    return 'eSkeyVal missing or not 32 bytes'
  }
  if (!eSkeySig || !verifyXEdDSA(eIdent, Buffer.concat([SIGNAL_KEY_TYPE, eSkeyVal]), eSkeySig)) {
    return 'signed pre-key signature invalid'
  }
  return undefined
}
