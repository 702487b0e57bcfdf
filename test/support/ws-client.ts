import type { Test } from 'tap'
import WebSocket from 'ws'
import { sightings } from './sightings.js'

export interface StreamClient {
  socket: WebSocket
  frames: any[]
  /** Resolves with the first frame (past or future) matching, after `from`. */
  waitFor: (match: (frame: any) => boolean, options?: { timeoutMs?: number, from?: number }) => Promise<any>
  send: (frame: unknown) => void
  closed: Promise<{ code: number, reason: string }>
}

/** A real WebSocket client on the service's /ws, recording every JSON frame. */
export async function openStream (t: Test, baseUrl: string, path: string, options: { token?: string, headers?: Record<string, string> } = {}): Promise<StreamClient> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers.token = options.token
  const socket = new WebSocket(baseUrl.replace(/^http/, 'ws') + path, { headers })
  const seen = sightings<any>(frame => frame.data === undefined ? JSON.stringify(frame) : `${String(frame.data.instance)}:${String(frame.data.state)}/${String(frame.data.detail)}#${String(frame.seq)}`)
  socket.on('message', data => { seen.add(JSON.parse(data.toString())) })
  const closed = new Promise<{ code: number, reason: string }>(resolve => {
    socket.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  t.teardown(() => { socket.terminate() })
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => { resolve() })
    socket.once('error', reject)
    socket.once('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => { reject(Object.assign(new Error(`HTTP ${response.statusCode ?? 0}`), { status: response.statusCode, body: JSON.parse(body) })) })
    })
  })
  return {
    socket,
    frames: seen.items,
    send: (frame) => { socket.send(JSON.stringify(frame)) },
    closed,
    waitFor: seen.waitFor
  }
}

/** The HTTP refusal of a WebSocket upgrade: status and JSON body. */
export async function refusedStream (t: Test, baseUrl: string, path: string, options: { token?: string } = {}): Promise<{ status: number, body: unknown }> {
  try {
    await openStream(t, baseUrl, path, options)
  } catch (error) {
    const { status, body } = error as { status?: number, body?: unknown }
    if (status !== undefined) return { status, body }
    throw error
  }
  throw new Error('the upgrade was accepted')
}
