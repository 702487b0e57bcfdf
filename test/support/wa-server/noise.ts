// Server side of WhatsApp's framing and Noise_XX_25519_AESGCM_SHA256 handshake
// (docs/whatsapp-test-server.md §3, §4).
import { aesGcmDecrypt, aesGcmEncrypt, generateKeyPair, hkdfSplit, sha256, sharedKey, type KeyPair } from './crypto.js'

// Exactly 32 bytes, so Noise uses it as the initial hash directly instead of hashing it.
const NOISE_MODE = Buffer.from('Noise_XX_25519_AESGCM_SHA256\0\0\0\0', 'latin1')
const WA_MAGIC = Buffer.from('WA', 'latin1')
const ED_MAGIC = Buffer.from('ED', 'latin1')
const WA_HEADER_LENGTH = 4
const MAX_FRAME = 0xffffff

export type IntroParse =
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; consumed: number; header: Buffer; routingInfo?: Buffer }

/**
 * The client's first bytes: either the 4-byte `WA` header, or an `ED 00 01` edge-routing prefix
 * with a 3-byte length and the routing info, followed by the `WA` header.
 */
export function parseIntro(buf: Buffer): IntroParse {
  if (buf.length < 2) {
    return { status: 'incomplete' }
  }
  let offset = 0
  let routingInfo: Buffer | undefined
  if (buf.subarray(0, 2).equals(ED_MAGIC)) {
    if (buf.length < 7) {
      return { status: 'incomplete' }
    }
    const length = buf.readUIntBE(4, 3)
    if (buf.length < 7 + length) {
      return { status: 'incomplete' }
    }
    routingInfo = Buffer.from(buf.subarray(7, 7 + length))
    offset = 7 + length
  }
  if (buf.length < offset + WA_HEADER_LENGTH) {
    return { status: 'incomplete' }
  }
  const header = Buffer.from(buf.subarray(offset, offset + WA_HEADER_LENGTH))
  if (!header.subarray(0, 2).equals(WA_MAGIC)) {
    return { status: 'invalid', reason: `bad intro ${buf.subarray(0, Math.min(buf.length, 8)).toString('hex')}` }
  }
  return { status: 'ok', consumed: offset + WA_HEADER_LENGTH, header, routingInfo }
}

/** Splits complete 3-byte-length-prefixed frames off the front of `buf`. */
export function takeFrames(buf: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = []
  let offset = 0
  while (buf.length - offset >= 3) {
    const length = buf.readUIntBE(offset, 3)
    if (buf.length - offset - 3 < length) {
      break
    }
    frames.push(buf.subarray(offset + 3, offset + 3 + length))
    offset += 3 + length
  }
  return { frames, rest: offset === 0 ? buf : buf.subarray(offset) }
}

export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > MAX_FRAME) {
    throw new Error(`frame of ${payload.length} bytes exceeds the 3-byte length prefix`)
  }
  const out = Buffer.allocUnsafe(3 + payload.length)
  out.writeUIntBE(payload.length, 0, 3)
  out.set(payload, 3)
  return out
}

/** Post-handshake cipher: one key and counter per direction, empty AAD. */
export class TransportCipher {
  private sendCounter = 0
  private recvCounter = 0

  constructor(
    private readonly sendKey: Buffer,
    private readonly recvKey: Buffer
  ) {}

  encrypt(plaintext: Uint8Array): Buffer {
    return aesGcmEncrypt(this.sendKey, this.sendCounter++, Buffer.alloc(0), plaintext)
  }

  decrypt(ciphertext: Uint8Array): Buffer {
    return aesGcmDecrypt(this.recvKey, this.recvCounter++, Buffer.alloc(0), ciphertext)
  }
}

export interface ServerHello {
  ephemeral: Buffer
  static: Buffer
  payload: Buffer
}

export interface HandshakeResult {
  /** The device's long-term noise key (`creds.noiseKey.public`), which authenticates it. */
  clientStatic: Buffer
  /** Encoded `ClientPayload`. */
  payload: Buffer
  transport: TransportCipher
}

/** Responder half of Noise XX as WhatsApp runs it. One instance per connection. */
export class ServerHandshake {
  private h: Buffer = NOISE_MODE
  private ck: Buffer = NOISE_MODE
  private k: Buffer = NOISE_MODE
  private n = 0
  private ephemeral: KeyPair | undefined

  /** `header` is the 4-byte WA header only: the ED routing prefix is not part of the prologue. */
  constructor(
    header: Buffer,
    private readonly staticKey: KeyPair
  ) {
    this.mixHash(header)
  }

  respond(clientEphemeral: Uint8Array, certChain: Uint8Array): ServerHello {
    if (clientEphemeral.length !== 32) {
      throw new Error(`client ephemeral key has ${clientEphemeral.length} bytes`)
    }
    this.mixHash(clientEphemeral)
    const ephemeral = generateKeyPair()
    this.ephemeral = ephemeral
    this.mixHash(ephemeral.public)
    this.mixKey(sharedKey(ephemeral.private, clientEphemeral))
    const encStatic = this.encryptAndHash(this.staticKey.public)
    this.mixKey(sharedKey(this.staticKey.private, clientEphemeral))
    const encPayload = this.encryptAndHash(certChain)
    return { ephemeral: ephemeral.public, static: encStatic, payload: encPayload }
  }

  finish(encStatic: Uint8Array, encPayload: Uint8Array): HandshakeResult {
    if (!this.ephemeral) {
      throw new Error('clientFinish before serverHello')
    }
    // No mixKey since the cert payload: this decrypts with nonce 1 of the `es` key.
    const clientStatic = this.decryptAndHash(encStatic)
    if (clientStatic.length !== 32) {
      throw new Error(`client static key has ${clientStatic.length} bytes`)
    }
    this.mixKey(sharedKey(this.ephemeral.private, clientStatic))
    const payload = this.decryptAndHash(encPayload)
    const [clientToServer, serverToClient] = hkdfSplit(Buffer.alloc(0), this.ck)
    return { clientStatic, payload, transport: new TransportCipher(serverToClient, clientToServer) }
  }

  private mixHash(data: Uint8Array): void {
    this.h = sha256(this.h, data)
  }

  private mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdfSplit(ikm, this.ck)
    this.ck = ck
    this.k = k
    this.n = 0
  }

  private encryptAndHash(plaintext: Uint8Array): Buffer {
    const ciphertext = aesGcmEncrypt(this.k, this.n++, this.h, plaintext)
    this.mixHash(ciphertext)
    return ciphertext
  }

  private decryptAndHash(ciphertext: Uint8Array): Buffer {
    const plaintext = aesGcmDecrypt(this.k, this.n++, this.h, ciphertext)
    this.mixHash(ciphertext)
    return plaintext
  }
}
