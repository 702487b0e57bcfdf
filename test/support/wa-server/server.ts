// The fake WhatsApp server: accepts Baileys connections, decides logins/registrations, answers
// iqs, plays the phone during pairing, and exposes the knobs tests use to misbehave.
import { proto, type BinaryNode } from '@whiskeysockets/baileys'
import { randomBytes, randomInt } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer } from 'ws'
import { forgeCertChain } from './certificates.js'
import { Connection, errorMessage, type ConnectionHost } from './connection.js'
import { generateKeyPair, generateTrustRoot, type KeyPair } from './crypto.js'
import { checkPairDeviceSign, checkRegistrationPayload, offerDeviceIdentity, parsePairingQr } from './pairing.js'
import {
  defaultIqAnswer,
  failureNode,
  firstChildTag,
  isLogoutKick,
  kickNode,
  SERVER_JID,
  type KickReason
} from './stanzas.js'

export type { KickReason } from './stanzas.js'

const WS_PATH = '/ws/chat'
const DEFAULT_WAIT_MS = 10_000
const PAIRING_REPLY_TIMEOUT_MS = 10_000

export interface FakeWhatsAppServerOptions {
  /** Default 0: a free port on 127.0.0.1. */
  port?: number
  /** Cert-chain root; default generateTrustRoot(). */
  root?: KeyPair
  /** Answer to encrypt/count; default 50. */
  preKeyCount?: number
  /** Refs per pair-device; default 6. */
  qrRefs?: number
  /** Unknown jid/noise key at login -> <failure reason="401">; default false. */
  strictDevices?: boolean
  /** Phone number completePairing uses; default '5511988887777'. */
  pairedJidPrefix?: string
}

export interface IqMatch {
  xmlns?: string
  type?: string
  /** Tag of the iq's first child. */
  child?: string
}

/** Return a node to send it, undefined to fall back to the default answer; 'ignore' never answers. */
export type IqAnswer = ((node: BinaryNode) => BinaryNode | undefined) | 'ignore'

export interface FakeWhatsAppServer {
  readonly url: string
  readonly port: number
  readonly root: KeyPair
  readonly logins: number
  readonly registrations: number
  /** Problems the server saw (bad frames, failed signature checks, throwing overrides…), in order. */
  readonly protocolErrors: readonly string[]
  loginsFor(jid: string): number
  maxConcurrentLoginsFor(jid: string): number
  /** Without jid: every open WebSocket (any phase). With jid: open logged-in connections of it. */
  openConnections(jid?: string): number
  waitForLogin(jid?: string, timeoutMs?: number): Promise<string>
  waitForQr(timeoutMs?: number): Promise<string>
  completePairing(qr: string, opts?: { jid?: string; lid?: string; businessName?: string }): Promise<{ jid: string }>
  registerDevice(jid: string, noisePublicKey: Uint8Array): void
  kick(jid: string | 'all', reason: KickReason): Promise<void>
  drop(jid: string | 'all'): void
  stall(on: boolean): void
  refuse(on: boolean): void
  failNextLogin(reasonCode: number): void
  onIq(match: IqMatch, answer: IqAnswer): () => void
  close(): Promise<void>
}

interface Waiter<T> {
  accept(value: T): boolean
  resolve(value: T): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

interface IqOverride {
  match: IqMatch
  answer: IqAnswer
}

/** `user[:device]@server`, with device 0 written without the `:0` as Baileys does. */
export function normalizeJid(jid: string): string {
  const at = jid.indexOf('@')
  const server = at >= 0 ? jid.slice(at + 1) : 's.whatsapp.net'
  const [user = '', device] = (at >= 0 ? jid.slice(0, at) : jid).split(':')
  return device && device !== '0' ? `${user}:${device}@${server}` : `${user}@${server}`
}

function splitJid(jid: string): { user: string; device: number } {
  const local = jid.split('@')[0] ?? ''
  const [user = '', device = '0'] = local.split(':')
  return { user, device: Number(device) || 0 }
}

function random15Digits(): string {
  return String(randomInt(1, 10)) + Array.from({ length: 14 }, () => String(randomInt(0, 10))).join('')
}

function nowSeconds(): string {
  return String(Math.floor(Date.now() / 1000))
}

class FakeServer implements FakeWhatsAppServer, ConnectionHost {
  readonly root: KeyPair
  readonly staticKey: KeyPair
  readonly certChain: Buffer
  readonly protocolErrors: string[] = []

  private readonly http: Server
  private readonly wss: WebSocketServer
  private readonly sockets = new Set<Socket>()
  private readonly connections = new Set<Connection>()
  private readonly preKeyCount: number
  private readonly qrRefs: number
  private readonly strictDevices: boolean
  private readonly pairedJidPrefix: string
  /** The phone's ADV account identity, which vouches for every device it pairs. */
  private readonly account = generateKeyPair()

  private listeningPort = 0
  private nextConnectionId = 1
  private nextPairedDevice = 7
  private nextServerIqId = 1
  private loginCount = 0
  private registrationCount = 0
  private stalled = false
  private refusing = false
  private failNext: number | undefined
  private closing: Promise<void> | undefined

  private readonly loginTotals = new Map<string, number>()
  private readonly openLogins = new Map<string, number>()
  private readonly peakLogins = new Map<string, number>()
  private readonly knownDevices = new Map<string, Buffer>()
  /** Phone number -> LID user, so every login of an account reports the same LID. */
  private readonly lidUsers = new Map<string, string>()
  private readonly refOwners = new Map<string, Connection>()
  private readonly iqOverrides: IqOverride[] = []
  private readonly loginWaiters = new Set<Waiter<string>>()
  private readonly qrWaiters = new Set<Waiter<string>>()
  private readonly offlineDelivered = new WeakSet<Connection>()

  constructor(opts: FakeWhatsAppServerOptions) {
    this.root = opts.root ?? generateTrustRoot()
    this.preKeyCount = opts.preKeyCount ?? 50
    this.qrRefs = opts.qrRefs ?? 6
    this.strictDevices = opts.strictDevices ?? false
    this.pairedJidPrefix = opts.pairedJidPrefix ?? '5511988887777'
    this.staticKey = generateKeyPair()
    this.certChain = forgeCertChain(this.root, this.staticKey.public)

    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n')
    })
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
    this.wss.on('error', err => this.protocolErrors.push(`websocket server error: ${err.message}`))
    this.http.on('connection', (socket: Socket) => {
      // Destroying here, before any HTTP byte, makes the client's dial fail like a dead host.
      if (this.refusing || this.closing) {
        socket.destroy()
        return
      }
      this.sockets.add(socket)
      socket.on('error', () => undefined)
      socket.on('close', () => this.sockets.delete(socket))
    })
    this.http.on('clientError', (_err, socket) => socket.destroy())
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname
      if (path !== WS_PATH || this.closing) {
        if (!this.closing) {
          this.protocolErrors.push(`upgrade to unexpected path ${path}`)
        }
        // Not an HTTP 404: Baileys listens for 'unexpected-response', which stops ws from failing
        // the dial, so the client would sit in 'connecting' forever. A reset fails it visibly.
        socket.destroy()
        return
      }
      this.wss.handleUpgrade(req, socket, head, ws => {
        const conn = new Connection(this.nextConnectionId++, ws, this)
        this.connections.add(conn)
      })
    })
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      this.http.once('error', onError)
      this.http.listen(port, '127.0.0.1', () => {
        this.http.off('error', onError)
        this.http.on('error', err => this.protocolErrors.push(`http server error: ${err.message}`))
        this.listeningPort = (this.http.address() as AddressInfo).port
        resolve()
      })
    })
  }

  // ---- observation ----

  get url(): string {
    return `ws://127.0.0.1:${this.listeningPort}${WS_PATH}`
  }

  get port(): number {
    return this.listeningPort
  }

  get logins(): number {
    return this.loginCount
  }

  get registrations(): number {
    return this.registrationCount
  }

  loginsFor(jid: string): number {
    return this.loginTotals.get(normalizeJid(jid)) ?? 0
  }

  maxConcurrentLoginsFor(jid: string): number {
    return this.peakLogins.get(normalizeJid(jid)) ?? 0
  }

  openConnections(jid?: string): number {
    if (jid === undefined) {
      let open = 0
      for (const conn of this.connections) {
        if (conn.isOpen) {
          open++
        }
      }
      return open
    }
    return this.openLogins.get(normalizeJid(jid)) ?? 0
  }

  waitForLogin(jid?: string, timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    const wanted = jid === undefined ? undefined : normalizeJid(jid)
    return this.addWaiter(
      this.loginWaiters,
      got => wanted === undefined || got === wanted,
      timeoutMs,
      `no login${wanted ? ` of ${wanted}` : ''} within ${timeoutMs} ms`
    )
  }

  waitForQr(timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    return this.addWaiter(this.qrWaiters, () => true, timeoutMs, `no pair-device within ${timeoutMs} ms`)
  }

  // ---- control ----

  async completePairing(
    qr: string,
    opts: { jid?: string; lid?: string; businessName?: string } = {}
  ): Promise<{ jid: string }> {
    const scanned = parsePairingQr(qr)
    const conn = this.refOwners.get(scanned.ref)
    if (!conn || !conn.isOpen) {
      throw new Error(`no open connection was given the QR ref ${scanned.ref}`)
    }
    if (!conn.identityPublic?.equals(scanned.identityPublic)) {
      throw new Error('QR identity key differs from the one the connection registered with')
    }
    if (!conn.noisePublic?.equals(scanned.noisePublic)) {
      throw new Error('QR noise key differs from the connection noise key')
    }

    const jid = normalizeJid(opts.jid ?? `${this.pairedJidPrefix}:${this.nextPairedDevice++}@s.whatsapp.net`)
    const { user, device } = splitJid(jid)
    const lid = opts.lid ?? this.lidFor(user, device)
    if (opts.lid) {
      this.lidUsers.set(user, splitJid(opts.lid).user)
    }

    const offer = offerDeviceIdentity({
      advSecret: scanned.advSecret,
      identityPublic: scanned.identityPublic,
      account: this.account
    })
    const pairSuccess: BinaryNode[] = [
      { tag: 'device-identity', attrs: {}, content: offer.container },
      { tag: 'platform', attrs: { name: 'android' } },
      { tag: 'device', attrs: { jid, lid } }
    ]
    if (opts.businessName !== undefined) {
      pairSuccess.push({ tag: 'biz', attrs: { name: opts.businessName } })
    }
    const reply = await conn.request(
      {
        tag: 'iq',
        attrs: { from: SERVER_JID, type: 'set', id: this.serverIqId(), t: nowSeconds() },
        content: [{ tag: 'pair-success', attrs: {}, content: pairSuccess }]
      },
      PAIRING_REPLY_TIMEOUT_MS
    )
    const problem = checkPairDeviceSign(reply, offer, scanned.identityPublic, this.account.public)
    if (problem) {
      this.protocolErrors.push(`pairing of ${jid}: ${problem}`)
      throw new Error(`pairing rejected: ${problem}`)
    }
    this.knownDevices.set(jid, Buffer.from(scanned.noisePublic))
    // The real server makes the freshly paired client reconnect and log in with its new identity.
    conn.send({ tag: 'stream:error', attrs: { code: '515' } }, { force: true })
    void conn.closeSoon()
    return { jid }
  }

  registerDevice(jid: string, noisePublicKey: Uint8Array): void {
    this.knownDevices.set(normalizeJid(jid), Buffer.from(noisePublicKey))
  }

  async kick(jid: string | 'all', reason: KickReason): Promise<void> {
    const node = kickNode(reason)
    const targets = this.select(jid, conn => conn.inTransport)
    if (isLogoutKick(reason)) {
      // Like the real service, a removed device has to pair again before it may log in.
      if (jid === 'all') {
        for (const conn of targets) {
          if (conn.jid) {
            this.knownDevices.delete(conn.jid)
          }
        }
      } else {
        this.knownDevices.delete(normalizeJid(jid))
      }
    }
    await Promise.all(
      targets.map(conn => {
        conn.send(node, { force: true })
        return conn.closeSoon()
      })
    )
  }

  drop(jid: string | 'all'): void {
    for (const conn of this.select(jid, () => true)) {
      conn.terminate()
    }
  }

  stall(on: boolean): void {
    this.stalled = on
  }

  refuse(on: boolean): void {
    this.refusing = on
  }

  failNextLogin(reasonCode: number): void {
    this.failNext = reasonCode
  }

  onIq(match: IqMatch, answer: IqAnswer): () => void {
    const entry: IqOverride = { match, answer }
    this.iqOverrides.push(entry)
    return () => {
      const index = this.iqOverrides.indexOf(entry)
      if (index >= 0) {
        this.iqOverrides.splice(index, 1)
      }
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  // ---- ConnectionHost ----

  isStalled(): boolean {
    return this.stalled
  }

  reportError(conn: Connection, message: string): void {
    this.protocolErrors.push(`connection #${conn.id}${conn.jid ? ` (${conn.jid})` : ''}: ${message}`)
  }

  onClientPayload(conn: Connection, payload: proto.ClientPayload): void {
    // A stalled server leaves the client waiting for <success>, <failure> or pair-device.
    if (this.stalled) {
      return
    }
    if (payload.devicePairingData) {
      this.onRegistration(conn, payload.devicePairingData)
    } else if (payload.username !== null && payload.username !== undefined) {
      this.onLogin(conn, normalizeJid(`${String(payload.username)}:${payload.device ?? 0}@s.whatsapp.net`))
    } else {
      this.reportError(conn, 'ClientPayload is neither a login nor a registration')
      conn.send(failureNode(400))
      void conn.closeSoon()
    }
  }

  onNode(conn: Connection, node: BinaryNode): void {
    if (node.tag === 'iq') {
      const type = node.attrs.type
      if (type !== 'result' && type !== 'error') {
        this.answerIq(conn, node)
      }
      return
    }
    // Baileys buffers events after login until the server says the offline queue is drained.
    // Once per login, as the client sends unified_session again e.g. on presence updates and a
    // second <offline/> would re-emit receivedPendingNotifications.
    if (
      node.tag === 'ib' &&
      firstChildTag(node) === 'unified_session' &&
      conn.role === 'login' &&
      !this.offlineDelivered.has(conn)
    ) {
      if (conn.send({ tag: 'ib', attrs: { from: SERVER_JID }, content: [{ tag: 'offline', attrs: { count: '0' } }] })) {
        this.offlineDelivered.add(conn)
      }
    }
  }

  onClosed(conn: Connection): void {
    this.connections.delete(conn)
    for (const ref of conn.refs) {
      if (this.refOwners.get(ref) === conn) {
        this.refOwners.delete(ref)
      }
    }
    if (conn.role === 'login' && conn.jid) {
      const open = (this.openLogins.get(conn.jid) ?? 1) - 1
      if (open > 0) {
        this.openLogins.set(conn.jid, open)
      } else {
        this.openLogins.delete(conn.jid)
      }
    }
  }

  // ---- internals ----

  private onLogin(conn: Connection, jid: string): void {
    if (this.failNext !== undefined) {
      const code = this.failNext
      this.failNext = undefined
      conn.send(failureNode(code))
      void conn.closeSoon()
      return
    }
    if (this.strictDevices) {
      const known = this.knownDevices.get(jid)
      if (!known || !conn.noisePublic || !known.equals(conn.noisePublic)) {
        conn.send(failureNode(401))
        void conn.closeSoon()
        return
      }
    }
    const { user, device } = splitJid(jid)
    const success: BinaryNode = {
      tag: 'success',
      attrs: {
        t: nowSeconds(),
        props: '1',
        abprops: '1',
        location: 'fake',
        creation: nowSeconds(),
        lid: this.lidFor(user, device)
      }
    }
    // A stalled server never says <success>, so it is not counted as a login either.
    if (!conn.send(success)) {
      return
    }
    conn.role = 'login'
    conn.jid = jid
    this.loginCount++
    this.loginTotals.set(jid, (this.loginTotals.get(jid) ?? 0) + 1)
    const open = (this.openLogins.get(jid) ?? 0) + 1
    this.openLogins.set(jid, open)
    this.peakLogins.set(jid, Math.max(open, this.peakLogins.get(jid) ?? 0))
    this.settle(this.loginWaiters, jid)
  }

  private onRegistration(conn: Connection, data: proto.ClientPayload.IDevicePairingRegistrationData): void {
    conn.role = 'registration'
    this.registrationCount++
    const problem = checkRegistrationPayload(data)
    if (problem) {
      this.reportError(conn, `registration rejected: ${problem}`)
      conn.send(failureNode(400))
      void conn.closeSoon()
      return
    }
    conn.identityPublic = Buffer.from(data.eIdent!)
    const refs = Array.from({ length: this.qrRefs }, () => `2@${randomBytes(36).toString('base64')}`)
    const sent = conn.send({
      tag: 'iq',
      attrs: { from: SERVER_JID, type: 'set', id: this.serverIqId(), xmlns: 'md' },
      content: [
        {
          tag: 'pair-device',
          attrs: {},
          content: refs.map(ref => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref, 'utf8') }))
        }
      ]
    })
    if (!sent) {
      return
    }
    for (const ref of refs) {
      conn.refs.add(ref)
      this.refOwners.set(ref, conn)
    }
    if (refs[0] !== undefined) {
      this.settle(this.qrWaiters, refs[0])
    }
  }

  private answerIq(conn: Connection, node: BinaryNode): void {
    const child = firstChildTag(node)
    for (let i = this.iqOverrides.length - 1; i >= 0; i--) {
      const { match, answer } = this.iqOverrides[i]!
      if (
        (match.xmlns !== undefined && match.xmlns !== node.attrs.xmlns) ||
        (match.type !== undefined && match.type !== node.attrs.type) ||
        (match.child !== undefined && match.child !== child)
      ) {
        continue
      }
      if (answer === 'ignore') {
        return
      }
      let custom: BinaryNode | undefined
      try {
        custom = answer(node)
      } catch (err) {
        this.reportError(conn, `onIq override threw: ${errorMessage(err)}`)
      }
      if (custom) {
        // Saves every override from having to copy the id that Baileys matches replies by.
        custom.attrs.id ??= node.attrs.id ?? ''
        if (custom.tag === 'iq') {
          custom.attrs.from ??= SERVER_JID
        }
        conn.send(custom)
        return
      }
      break
    }
    conn.send(defaultIqAnswer(node, this.preKeyCount))
  }

  private select(jid: string | 'all', filter: (conn: Connection) => boolean): Connection[] {
    const wanted = jid === 'all' ? undefined : normalizeJid(jid)
    return [...this.connections].filter(conn => filter(conn) && (wanted === undefined || conn.jid === wanted))
  }

  private lidFor(user: string, device: number): string {
    return normalizeJid(`${this.lidUserFor(user)}:${device}@lid`)
  }

  private lidUserFor(user: string): string {
    let lidUser = this.lidUsers.get(user)
    if (!lidUser) {
      lidUser = random15Digits()
      this.lidUsers.set(user, lidUser)
    }
    return lidUser
  }

  private serverIqId(): string {
    return `srv-${this.nextServerIqId++}`
  }

  private addWaiter<T>(
    set: Set<Waiter<T>>,
    accept: (value: T) => boolean,
    timeoutMs: number,
    timeoutMessage: string
  ): Promise<T> {
    if (this.closing) {
      return Promise.reject(new Error('fake WhatsApp server is closed'))
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        accept,
        resolve,
        reject,
        timer: setTimeout(() => {
          set.delete(waiter)
          reject(new Error(timeoutMessage))
        }, timeoutMs)
      }
      waiter.timer.unref()
      set.add(waiter)
    })
  }

  private settle<T>(set: Set<Waiter<T>>, value: T): void {
    for (const waiter of [...set]) {
      if (waiter.accept(value)) {
        set.delete(waiter)
        clearTimeout(waiter.timer)
        waiter.resolve(value)
      }
    }
  }

  private async shutdown(): Promise<void> {
    for (const set of [this.loginWaiters, this.qrWaiters] as Set<Waiter<string>>[]) {
      for (const waiter of set) {
        clearTimeout(waiter.timer)
        waiter.reject(new Error('fake WhatsApp server closed'))
      }
      set.clear()
    }
    const closed = [...this.connections].map(conn => conn.closed)
    for (const conn of this.connections) {
      conn.terminate()
    }
    for (const socket of this.sockets) {
      socket.destroy()
    }
    await Promise.all(closed)
    await new Promise<void>(resolve => this.wss.close(() => resolve()))
    await new Promise<void>(resolve => {
      this.http.close(() => resolve())
      this.http.closeAllConnections()
    })
  }
}

export async function startFakeWhatsAppServer(opts: FakeWhatsAppServerOptions = {}): Promise<FakeWhatsAppServer> {
  const server = new FakeServer(opts)
  await server.listen(opts.port ?? 0)
  return server
}
