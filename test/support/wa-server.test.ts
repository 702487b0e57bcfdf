// Proves the fake WhatsApp server against the real, unmodified Baileys client.
import makeWASocket, {
  Browsers,
  type AuthenticationState,
  type ConnectionState,
  type UserFacingSocketConfig
} from '@whiskeysockets/baileys'
import P from 'pino'
import t from 'tap'
import {
  installStrictCurveVerify,
  installTestTrustRoot,
  memoryAuthState,
  savedSessionCreds,
  startFakeWhatsAppServer,
  type FakeWhatsAppServer,
  type FakeWhatsAppServerOptions,
  type KickReason
} from './wa-server/index.js'

const logger = P({ level: 'silent' })
const VERSION: [number, number, number] = [2, 3000, 1043857760]
const WAIT_MS = 10_000

type Socket = ReturnType<typeof makeWASocket>
type Update = Partial<ConnectionState>

interface CloseInfo {
  statusCode: number | undefined
  message: string | undefined
}

interface Client {
  sock: Socket
  state: AuthenticationState
  updates: Update[]
  open(): Promise<Update>
  /** open, then the server's <ib><offline/> flushed Baileys' buffer: no query is left pending. */
  settled(): Promise<Update>
  qr(): Promise<string>
  closed(timeoutMs?: number): Promise<CloseInfo>
  end(): Promise<void>
}

function connect(server: FakeWhatsAppServer, state: AuthenticationState, extra: Partial<UserFacingSocketConfig> = {}): Client {
  const sock = makeWASocket({
    auth: state,
    logger,
    waWebSocketUrl: server.url,
    version: VERSION,
    browser: Browsers.ubuntu('Chrome'),
    printQRInTerminal: false,
    markOnlineOnConnect: false,
    // Queries still pending when a socket ends keep timers alive this long (pitfall 5).
    defaultQueryTimeoutMs: 2000,
    ...extra
  })
  const updates: Update[] = []
  const waiters = new Set<{ match(u: Update): boolean; resolve(u: Update): void }>()
  sock.ev.on('connection.update', update => {
    updates.push(update)
    for (const waiter of [...waiters]) {
      if (waiter.match(update)) {
        waiters.delete(waiter)
        waiter.resolve(update)
      }
    }
  })
  const until = (match: (u: Update) => boolean, label: string, timeoutMs = WAIT_MS): Promise<Update> => {
    const past = updates.find(match)
    if (past) {
      return Promise.resolve(past)
    }
    return new Promise<Update>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (u: Update) => {
          clearTimeout(timer)
          resolve(u)
        }
      }
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new Error(`timed out waiting for ${label}; updates: ${JSON.stringify(updates.map(describe))}`))
      }, timeoutMs)
      waiters.add(waiter)
    })
  }
  const closed = async (timeoutMs?: number): Promise<CloseInfo> => {
    const update = await until(u => u.connection === 'close', 'close', timeoutMs)
    const error = update.lastDisconnect?.error as (Error & { output?: { statusCode?: number } }) | undefined
    return { statusCode: error?.output?.statusCode, message: error?.message }
  }
  return {
    sock,
    state,
    updates,
    open: () => until(u => u.connection === 'open', 'open'),
    settled: async () => {
      await until(u => u.connection === 'open', 'open')
      return until(u => u.receivedPendingNotifications === true, 'receivedPendingNotifications')
    },
    qr: async () => (await until(u => typeof u.qr === 'string', 'qr')).qr!,
    closed,
    end: async () => {
      if (!updates.some(u => u.connection === 'close')) {
        await sock.end(undefined)
      }
      await closed()
    }
  }
}

function describe(u: Update): unknown {
  const error = u.lastDisconnect?.error as (Error & { output?: { statusCode?: number } }) | undefined
  return { ...u, qr: u.qr ? '<qr>' : u.qr, lastDisconnect: error ? `${error.output?.statusCode} ${error.message}` : undefined }
}

async function startServer(t: { teardown(fn: () => unknown): void }, opts: FakeWhatsAppServerOptions = {}, trustRoot = true): Promise<FakeWhatsAppServer> {
  const server = await startFakeWhatsAppServer(opts)
  t.teardown(() => server.close())
  if (trustRoot) {
    t.teardown(installTestTrustRoot(server.root.public))
  }
  return server
}

// Every flow runs with a strict Curve.verify, so the client really checks the forged chain and
// the ADV signatures instead of rc14's accept-anything verify.
t.teardown(installStrictCurveVerify())

t.test('saved session logs in and opens (trust root + strict verify)', async t => {
  const server = await startServer(t)
  const jid = '5511999999999:1@s.whatsapp.net'
  const login = server.waitForLogin(jid)
  const client = connect(server, memoryAuthState(savedSessionCreds(jid)))
  await client.open()
  t.equal(await login, jid)
  await client.settled()
  t.equal(server.logins, 1)
  t.equal(server.loginsFor(jid), 1)
  t.equal(server.openConnections(jid), 1)
  t.equal(server.registrations, 0)
  t.match(client.state.creds.me?.lid, /^\d{15}:1@lid$/, 'success lid stored as me.lid')
  await client.end()
  await waitFor(() => server.openConnections() === 0)
  t.equal(server.openConnections(jid), 0)
  t.same(server.protocolErrors, [])
})

t.test('strict verify without the trust root rejects the chain with 400', async t => {
  const server = await startServer(t, {}, false)
  const client = connect(server, memoryAuthState(savedSessionCreds()))
  const closed = await client.closed()
  t.equal(closed.statusCode, 400)
  t.match(closed.message, /certificate/)
  t.equal(closed.message, 'noise intermediate certificate signature invalid')
  t.equal(server.logins, 0)
})

t.test('QR flow: registration, pairing, 515, login with the paired identity', async t => {
  const server = await startServer(t, { strictDevices: true })
  const state = memoryAuthState()
  const issuedRef = server.waitForQr()
  const first = connect(server, state)
  const qr = await first.qr()
  const ref = await issuedRef
  t.match(qr, /^https:\/\/wa\.me\/settings\/linked_devices#/)
  t.ok(qr.includes(`#${ref},`), 'the QR shows the first ref of pair-device')
  t.equal(server.registrations, 1)

  const { jid } = await server.completePairing(qr, { businessName: 'Fake Biz' })
  const closed = await first.closed()
  t.equal(closed.statusCode, 515)
  t.equal(closed.message, 'Stream Errored (restart required)')
  t.ok(first.updates.some(u => u.isNewLogin === true), 'isNewLogin emitted')
  t.equal(state.creds.me?.id, jid)
  t.equal(state.creds.me?.name, 'Fake Biz')
  t.match(jid, /^5511988887777:\d+@s\.whatsapp\.net$/)

  const second = connect(server, state)
  await second.settled()
  t.equal(server.loginsFor(jid), 1)
  t.equal(server.logins, 1)
  await second.end()

  // strictDevices: a saved session the server never paired is refused.
  const stranger = connect(server, memoryAuthState(savedSessionCreds('5511000000000:3@s.whatsapp.net')))
  const refused = await stranger.closed()
  t.equal(refused.statusCode, 401)
  t.equal(refused.message, 'Connection Failure')
  t.same(server.protocolErrors, [])
})

t.test('kicks and drops produce the documented status codes', async t => {
  const server = await startServer(t)
  const cases: Array<[KickReason | 'drop', number, string]> = [
    ['logged_out', 401, 'Stream Errored (conflict)'],
    ['logged_out_failure', 401, 'Connection Failure'],
    ['restart_required', 515, 'Stream Errored (restart required)'],
    ['replaced', 440, 'Stream Errored (conflict)'],
    ['unavailable', 503, 'Stream Errored (unknown)'],
    ['bad_session', 500, 'Stream Errored (xml-not-well-formed)'],
    ['stream_end', 428, 'Connection Terminated by Server'],
    ['forbidden', 403, 'Connection Failure'],
    ['multidevice_mismatch', 411, 'Multi-device beta not joined'],
    [{ streamErrorCode: 516 }, 516, 'Stream Errored (unknown)'],
    ['drop', 428, 'Connection Terminated']
  ]
  let n = 0
  for (const [reason, statusCode, message] of cases) {
    const jid = `55119000000${String(n++).padStart(2, '0')}:1@s.whatsapp.net`
    const client = connect(server, memoryAuthState(savedSessionCreds(jid)))
    await client.settled()
    if (reason === 'drop') {
      server.drop(jid)
    } else {
      await server.kick(jid, reason)
    }
    const closed = await client.closed()
    const label = typeof reason === 'string' ? reason : JSON.stringify(reason)
    t.equal(closed.statusCode, statusCode, `${label} -> ${statusCode}`)
    t.equal(closed.message, message, `${label} message`)
  }
  await waitFor(() => server.openConnections() === 0)
})

t.test('refuse: new dials fail with 408, existing connections are unaffected', async t => {
  const server = await startServer(t)
  const existingJid = '5511999990001:1@s.whatsapp.net'
  const existing = connect(server, memoryAuthState(savedSessionCreds(existingJid)))
  await existing.settled()

  server.refuse(true)
  const refused = connect(server, memoryAuthState(savedSessionCreds('5511999990002:1@s.whatsapp.net')))
  const closed = await refused.closed()
  t.equal(closed.statusCode, 408)
  t.match(closed.message, /socket hang up|ECONNRESET|ECONNREFUSED/)
  t.equal(server.openConnections(existingJid), 1)
  const pong = await existing.sock.query({
    tag: 'iq',
    attrs: { to: '@s.whatsapp.net', type: 'get', xmlns: 'w:p' },
    content: [{ tag: 'ping', attrs: {} }]
  })
  t.equal(pong.attrs.type, 'result', 'the existing connection is still answered')

  server.refuse(false)
  const again = connect(server, memoryAuthState(savedSessionCreds('5511999990002:1@s.whatsapp.net')))
  await again.settled()
  await Promise.all([existing.end(), again.end()])
})

t.test('stall: the client gives up with 408 after keepAliveIntervalMs + 5 s', async t => {
  const server = await startServer(t)
  const client = connect(server, memoryAuthState(savedSessionCreds()), { keepAliveIntervalMs: 1000 })
  await client.settled()
  server.stall(true)
  const started = Date.now()
  const closed = await client.closed(15_000)
  t.equal(closed.statusCode, 408)
  t.equal(closed.message, 'Connection was lost')
  t.ok(Date.now() - started >= 5000, 'not before keepAliveIntervalMs + 5 s')
  server.stall(false)
})

t.test('QR refs run out: 408 "QR refs attempts ended"', async t => {
  const server = await startServer(t, { qrRefs: 2 })
  const client = connect(server, memoryAuthState(), { qrTimeout: 200 })
  const closed = await client.closed()
  t.equal(closed.statusCode, 408)
  t.equal(closed.message, 'QR refs attempts ended')
  t.equal(client.updates.filter(u => typeof u.qr === 'string').length, 2, 'one QR per ref')
})

t.test('ED routing intro, concurrent logins of one identity, failNextLogin', async t => {
  const server = await startServer(t)
  const jid = '5511999998888:2@s.whatsapp.net'
  const creds = savedSessionCreds(jid)
  creds.routingInfo = Buffer.from('0806080d0812', 'hex')
  const a = connect(server, memoryAuthState(creds))
  const b = connect(server, memoryAuthState(savedSessionCreds(jid)))
  await Promise.all([a.settled(), b.settled()])
  t.equal(server.maxConcurrentLoginsFor(jid), 2)
  t.equal(server.openConnections(jid), 2)
  await Promise.all([a.end(), b.end()])
  await waitFor(() => server.openConnections(jid) === 0)
  t.equal(server.maxConcurrentLoginsFor(jid), 2, 'the peak is kept')

  server.failNextLogin(401)
  const failed = connect(server, memoryAuthState(savedSessionCreds(jid)))
  const closed = await failed.closed()
  t.equal(closed.statusCode, 401)
  t.equal(server.loginsFor(jid), 2, 'a failed login is not counted')
})

t.test('onIq overrides: custom answer, ignore, removal', async t => {
  const server = await startServer(t)
  const client = connect(server, memoryAuthState(savedSessionCreds()))
  await client.settled()
  const ask = (timeoutMs?: number) =>
    client.sock.query(
      { tag: 'iq', attrs: { to: '@s.whatsapp.net', type: 'get', xmlns: 'test:echo' }, content: [{ tag: 'hello', attrs: {} }] },
      timeoutMs
    )
  const removeCustom = server.onIq({ xmlns: 'test:echo', child: 'hello' }, () => ({
    tag: 'iq',
    attrs: { type: 'result' },
    content: [{ tag: 'world', attrs: {} }]
  }))
  const answered = await ask()
  t.equal(Array.isArray(answered.content) ? answered.content[0]?.tag : undefined, 'world')

  const removeIgnore = server.onIq({ xmlns: 'test:echo' }, 'ignore')
  // An explicit query timeout rejects (Boom 408 "Timed Out"); the default one would resolve undefined.
  await t.rejects(ask(300), { message: 'Timed Out', output: { statusCode: 408 } }, 'an ignored iq times out on the client')
  removeIgnore()
  removeCustom()
  const generic = await ask()
  t.equal(generic.attrs.type, 'result')
  t.equal(generic.content, undefined, 'back to the generic answer')
  await client.end()
})

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time')
    }
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
