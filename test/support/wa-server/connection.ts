// One client WebSocket: intro parsing, the noise handshake, the encrypted node transport and
// request/reply bookkeeping. What to *answer* is decided by the server (server.ts) via ConnectionHost.
import { decodeBinaryNode, encodeBinaryNode, proto, type BinaryNode } from '@whiskeysockets/baileys'
import { WebSocket, type RawData } from 'ws'
import type { KeyPair } from './crypto.js'
import { encodeFrame, parseIntro, ServerHandshake, takeFrames, type TransportCipher } from './noise.js'

export interface ConnectionHost {
  readonly staticKey: KeyPair
  readonly certChain: Buffer
  isStalled(): boolean
  onClientPayload(conn: Connection, payload: proto.ClientPayload): void
  onNode(conn: Connection, node: BinaryNode): void
  onClosed(conn: Connection): void
  reportError(conn: Connection, message: string): void
}

type Phase = 'intro' | 'hello' | 'finish' | 'transport' | 'closed'

interface ReplyWaiter {
  resolve(node: BinaryNode): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

const EMPTY = Buffer.alloc(0)

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) {
    return data
  }
  if (Array.isArray(data)) {
    return Buffer.concat(data)
  }
  return Buffer.from(data)
}

export class Connection {
  /** Set once the payload says what this connection is. */
  role: 'handshake' | 'login' | 'registration' = 'handshake'
  /** The jid of an accepted login; undefined for registrations and refused logins. */
  jid: string | undefined
  /** `creds.noiseKey.public` of the device, known after the third handshake message. */
  noisePublic: Buffer | undefined
  /** `signedIdentityKey.public` announced by a registration. */
  identityPublic: Buffer | undefined
  routingInfo: Buffer | undefined
  /** Pair-device refs this connection was given; a scanned QR is routed back here by ref. */
  readonly refs = new Set<string>()

  private phase: Phase = 'intro'
  private inbound: Buffer = EMPTY
  private handshake: ServerHandshake | undefined
  private transport: TransportCipher | undefined
  // Frames are handled strictly in arrival order; decodeBinaryNode is async, so without this
  // chain a later frame could overtake an earlier one (and transport counters would desync).
  private queue: Promise<void> = Promise.resolve()
  private readonly replyWaiters = new Map<string, ReplyWaiter>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly closedPromise: Promise<void>
  private markClosed!: () => void

  constructor(
    readonly id: number,
    private readonly ws: WebSocket,
    private readonly host: ConnectionHost
  ) {
    this.closedPromise = new Promise(resolve => {
      this.markClosed = resolve
    })
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        this.fail('text WebSocket message; WhatsApp speaks binary only')
        return
      }
      const chunk = toBuffer(data)
      this.queue = this.queue.then(() => this.consume(chunk)).catch(err => this.fail(errorMessage(err)))
    })
    // Without an 'error' listener ws would rethrow and crash the process.
    ws.on('error', err => this.host.reportError(this, `websocket error: ${err.message}`))
    ws.on('close', () => this.handleClose())
  }

  get isOpen(): boolean {
    return this.phase !== 'closed' && this.ws.readyState === WebSocket.OPEN
  }

  get inTransport(): boolean {
    return this.phase === 'transport'
  }

  get closed(): Promise<void> {
    return this.closedPromise
  }

  /**
   * Encrypts and sends a node. Returns false when nothing was sent: socket gone, or the server is
   * stalled (`force` is for explicit test actions, which are sent even while stalled).
   */
  send(node: BinaryNode, opts: { force?: boolean } = {}): boolean {
    if (!this.transport || !this.isOpen || (this.host.isStalled() && !opts.force)) {
      return false
    }
    // Encrypt and hand to ws in one synchronous step so frames leave in counter order.
    const frame = encodeFrame(this.transport.encrypt(encodeBinaryNode(node)))
    this.ws.send(frame, err => {
      if (err) {
        this.host.reportError(this, `send failed: ${err.message}`)
      }
    })
    return true
  }

  /** Sends a server-initiated iq and resolves with the client's result/error reply. */
  request(node: BinaryNode, timeoutMs: number): Promise<BinaryNode> {
    const id = node.attrs.id
    if (!id) {
      return Promise.reject(new Error('request needs attrs.id'))
    }
    return new Promise<BinaryNode>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.replyWaiters.delete(id)
        reject(new Error(`no reply to iq ${id} within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.replyWaiters.set(id, { resolve, reject, timer })
      if (!this.send(node, { force: true })) {
        clearTimeout(timer)
        this.replyWaiters.delete(id)
        reject(new Error('connection is closed'))
      }
    })
  }

  /** Closes the WebSocket after `delayMs` (so a just-sent node is read first); resolves once closed. */
  closeSoon(delayMs = 50): Promise<void> {
    if (this.phase !== 'closed') {
      this.later(delayMs, () => {
        this.ws.close()
        // A client that never answers the close frame is cut off rather than waited for.
        this.later(1000, () => this.ws.terminate())
      })
    }
    return this.closedPromise
  }

  /** Destroys the TCP socket without a close frame. */
  terminate(): void {
    this.ws.terminate()
  }

  private isClosed(): boolean {
    return this.phase === 'closed'
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      fn()
    }, ms)
    timer.unref()
    this.timers.add(timer)
  }

  private fail(message: string): void {
    if (this.phase === 'closed') {
      return
    }
    this.host.reportError(this, message)
    this.terminate()
  }

  private async consume(chunk: Buffer): Promise<void> {
    if (this.phase === 'closed') {
      return
    }
    this.inbound = this.inbound.length ? Buffer.concat([this.inbound, chunk]) : chunk
    if (this.phase === 'intro') {
      const intro = parseIntro(this.inbound)
      if (intro.status === 'incomplete') {
        return
      }
      if (intro.status === 'invalid') {
        throw new Error(intro.reason)
      }
      this.routingInfo = intro.routingInfo
      this.handshake = new ServerHandshake(intro.header, this.host.staticKey)
      this.inbound = this.inbound.subarray(intro.consumed)
      this.phase = 'hello'
    }
    const { frames, rest } = takeFrames(this.inbound)
    // Copy the remainder so a retained partial frame does not pin a large WebSocket buffer.
    this.inbound = rest.length ? Buffer.from(rest) : EMPTY
    for (const frame of frames) {
      // The socket may have closed while an earlier frame was being decoded.
      if (this.isClosed()) {
        return
      }
      await this.onFrame(frame)
    }
  }

  private async onFrame(frame: Buffer): Promise<void> {
    switch (this.phase) {
      case 'hello': {
        const ephemeral = proto.HandshakeMessage.decode(frame).clientHello?.ephemeral
        if (!ephemeral) {
          throw new Error('first handshake message has no clientHello.ephemeral')
        }
        const hello = this.handshake!.respond(ephemeral, this.host.certChain)
        this.phase = 'finish'
        if (!this.host.isStalled() && this.isOpen) {
          const bytes = proto.HandshakeMessage.encode({ serverHello: hello }).finish()
          this.ws.send(encodeFrame(bytes), () => undefined)
        }
        return
      }
      case 'finish': {
        const finish = proto.HandshakeMessage.decode(frame).clientFinish
        if (!finish?.static || !finish.payload) {
          throw new Error('third handshake message has no clientFinish static/payload')
        }
        const result = this.handshake!.finish(finish.static, finish.payload)
        this.handshake = undefined
        this.transport = result.transport
        this.noisePublic = result.clientStatic
        this.phase = 'transport'
        this.host.onClientPayload(this, proto.ClientPayload.decode(result.payload))
        return
      }
      case 'transport': {
        const node = await decodeBinaryNode(this.transport!.decrypt(frame))
        if (this.phase !== 'transport') {
          return
        }
        const { type, id } = node.attrs
        if (node.tag === 'iq' && (type === 'result' || type === 'error') && id) {
          const waiter = this.replyWaiters.get(id)
          if (waiter) {
            this.replyWaiters.delete(id)
            clearTimeout(waiter.timer)
            waiter.resolve(node)
            return
          }
        }
        this.host.onNode(this, node)
        return
      }
      default:
        return
    }
  }

  private handleClose(): void {
    if (this.phase === 'closed') {
      return
    }
    this.phase = 'closed'
    this.inbound = EMPTY
    for (const timer of this.timers) {
      clearTimeout(timer)
    }
    this.timers.clear()
    for (const [id, waiter] of this.replyWaiters) {
      clearTimeout(waiter.timer)
      waiter.reject(new Error(`connection closed before the reply to iq ${id}`))
    }
    this.replyWaiters.clear()
    try {
      this.host.onClosed(this)
    } finally {
      this.markClosed()
    }
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
