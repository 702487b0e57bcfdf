import { createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

export interface ReceivedRequest {
  path: string
  headers: IncomingHttpHeaders
  body: string
  json: any
  status: number
}

export interface WebhookReceiver {
  url: string
  port: number
  /** Every request, answered or not. */
  requests: ReceivedRequest[]
  /** Requests answered 2xx: what the receiver accepted. */
  accepted: () => ReceivedRequest[]
  /** Answers `count` more requests with `status` instead of 200, after the failures already planned. */
  failNext: (count: number, status?: number) => void
  waitForAccepted: (count: number, timeoutMs?: number) => Promise<ReceivedRequest[]>
  close: () => Promise<void>
}

/** A real HTTP server playing a customer's webhook endpoint. */
export async function startWebhookReceiver (t: Test, port = 0): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = []
  let failures: Array<number> = []
  const wakers = new Set<() => void>()
  const server: Server = createServer((request, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => { body += chunk.toString() })
    request.on('end', () => {
      const status = failures.shift() ?? 200
      requests.push({ path: request.url ?? '', headers: request.headers, body, json: JSON.parse(body), status })
      response.writeHead(status).end()
      for (const wake of wakers) wake()
    })
  })
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  const actualPort = (server.address() as AddressInfo).port
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  }
  t.teardown(close)
  const accepted = (): ReceivedRequest[] => requests.filter(request => request.status >= 200 && request.status < 300)
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    requests,
    accepted,
    failNext: (count, status = 500) => { failures = [...failures, ...Array<number>(count).fill(status)] },
    close,
    async waitForAccepted (count, timeoutMs = 10_000) {
      return await new Promise((resolve, reject) => {
        const check = (): void => { if (accepted().length >= count) { done(); resolve(accepted()) } }
        const timer = setTimeout(() => { done(); reject(new Error(`only ${accepted().length} of ${count} deliveries accepted within ${timeoutMs} ms`)) }, timeoutMs)
        const done = (): void => { clearTimeout(timer); wakers.delete(check) }
        wakers.add(check)
        check()
      })
    }
  }
}

/** Checks X-Webhook-Signature (`t=<unix>,v1=<hex>`) the way a receiver should. */
export function signatureIsValid (request: ReceivedRequest, secret: string): boolean {
  const header = String(request.headers['x-webhook-signature'] ?? '')
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header)
  if (match === null) return false
  const expected = createHmac('sha256', secret).update(`${match[1] ?? ''}.${request.body}`).digest('hex')
  return expected === match[2]
}
