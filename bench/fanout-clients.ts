/**
 * The subscriber side of bench/fanout.ts: one process holding every WebSocket
 * client (the `ws` package) on the service's `GET /ws`, authenticated with a
 * `token` header, so that the service never shares its event loop with them.
 *
 * `open` connects `count` clients, at most `concurrency` handshakes at a time;
 * a client counts as connected once its snapshot frame arrived. For every
 * frame of a bench event (`detail: 'bench_<seq>'`) the receipt time is taken
 * first thing in the 'message' handler and kept per (event, client); once all
 * open clients have an event, the parent hears `complete`. The frame is not
 * JSON-parsed: a byte search for the detail keeps the clients' own cost per
 * frame small, since that cost is part of what the receipt time measures.
 */
import WebSocket from 'ws'
import { type ClientsReply, type ClientsRequest, DETAIL_PREFIX, openFilesLimit, wallNow } from './fanout-protocol.js'

function send (message: ClientsReply): void {
  if (process.send !== undefined) process.send(message)
}

const BENCH_MARK = Buffer.from(`"detail":"${DETAIL_PREFIX}`)
const SNAPSHOT_MARK = Buffer.from('"detail":"snapshot"')
const DIGIT_0 = 0x30
const DIGIT_9 = 0x39

interface Run {
  count: number
  events: number
  receipts: Float64Array
  received: Uint32Array
  sockets: WebSocket[]
  alive: number
  closedEarly: number
  closeCodes: Record<string, number>
  otherFrames: number
  closing: boolean
}

let run: Run | null = null

/** The sequence number of a bench event frame, or -1 (snapshot) / -2 (anything else). */
function sequenceOf (data: Buffer): number {
  const at = data.indexOf(BENCH_MARK)
  if (at === -1) return data.indexOf(SNAPSHOT_MARK) === -1 ? -2 : -1
  let seq = 0
  for (let i = at + BENCH_MARK.length; i < data.length; i++) {
    const byte = data[i] as number
    if (byte < DIGIT_0 || byte > DIGIT_9) break
    seq = seq * 10 + byte - DIGIT_0
  }
  return seq
}

function checkComplete (state: Run, seq: number, at: number): void {
  if (seq >= 0 && seq < state.events && state.received[seq] === state.alive) send({ type: 'complete', seq, at })
}

/** Opens one client and resolves once its snapshot arrived (or rejects on a refused upgrade). */
async function openClient (state: Run, index: number, url: string, token: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { token }, perMessageDeflate: false })
    let opened = false
    let snapshot = false
    socket.on('message', (data: Buffer) => {
      const now = wallNow()
      const seq = sequenceOf(data)
      if (seq >= 0) {
        if (seq >= state.events) return
        const slot = seq * state.count + index
        if (!Number.isNaN(state.receipts[slot])) return
        state.receipts[slot] = now
        state.received[seq] = (state.received[seq] as number) + 1
        checkComplete(state, seq, now)
      } else if (seq === -1 && !snapshot) {
        snapshot = true
        resolve()
      } else {
        state.otherFrames++
      }
    })
    socket.once('open', () => {
      opened = true
      state.alive++
      state.sockets[index] = socket
    })
    socket.once('close', (code) => {
      if (!opened) return
      state.alive--
      if (state.closing) return
      // One fewer subscriber to wait for: the events it was missing may now be complete.
      for (let seq = 0; seq < state.events; seq++) {
        if (Number.isNaN(state.receipts[seq * state.count + index]) && (state.received[seq] as number) > 0) checkComplete(state, seq, wallNow())
      }
      state.closedEarly++
      state.closeCodes[String(code)] = (state.closeCodes[String(code)] ?? 0) + 1
      if (!snapshot) reject(new Error(`closed with ${code} before the snapshot`))
    })
    socket.once('error', (error) => { if (!opened) reject(error) })
    socket.once('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => { reject(new Error(`HTTP ${response.statusCode ?? 0}: ${body}`)) })
    })
  })
}

async function openAll (urls: string[], token: string, count: number, concurrency: number, events: number): Promise<void> {
  const state: Run = {
    count,
    events,
    receipts: new Float64Array(count * events).fill(Number.NaN),
    received: new Uint32Array(events),
    sockets: new Array<WebSocket>(count),
    alive: 0,
    closedEarly: 0,
    closeCodes: {},
    otherFrames: 0,
    closing: false
  }
  run = state
  const wsUrls = urls.map(url => `${url.replace(/^http/, 'ws')}/ws`)
  let next = 0
  let failures = 0
  let firstFailure: string | null = null
  const started = wallNow()
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++
      try {
        await openClient(state, index, wsUrls[index % wsUrls.length] as string, token)
      } catch (error) {
        failures++
        firstFailure ??= error instanceof Error ? error.message : String(error)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  send({ type: 'opened', connectMs: wallNow() - started, opened: state.alive, failures, firstFailure })
}

async function closeAll (): Promise<void> {
  if (run === null) return
  const state = run
  state.closing = true
  const sockets = state.sockets.filter((socket): socket is WebSocket => socket !== undefined)
  await Promise.all(sockets.map(async socket => {
    if (socket.readyState === WebSocket.CLOSED) return
    await new Promise<void>(resolve => {
      socket.once('close', () => { resolve() })
      socket.terminate()
    })
  }))
}

process.on('message', (message: ClientsRequest) => {
  void (async () => {
    switch (message.type) {
      case 'clock':
        send({ type: 'clock', id: message.id, now: wallNow() })
        break
      case 'open':
        await openAll(message.urls, message.token, message.count, message.concurrency, message.events)
        break
      case 'collect': {
        if (run === null) throw new Error('collect before open')
        send({ type: 'collected', count: run.count, events: run.events, receipts: run.receipts, closedEarly: run.closedEarly, closeCodes: run.closeCodes, otherFrames: run.otherFrames })
        break
      }
      case 'close':
        await closeAll()
        send({ type: 'closed' })
        process.disconnect?.()
        break
    }
  })().catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
})

send({ type: 'started', openFiles: openFilesLimit() })
