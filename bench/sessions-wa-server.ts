/**
 * The WhatsApp side of bench/sessions.ts: the local WhatsApp protocol server
 * (test/support/wa-server), run in its own process so that the service
 * process's RSS and CPU time are the service's alone.
 *
 * The certificate-chain root is derived from a fixed 32-byte private key given
 * as hex in BENCH_WA_ROOT_PRIVATE (or as the first argument), so the service
 * process can trust it with installTestTrustRoot(keyPairFromPrivate(priv).public).
 *
 * Prints `WA_URL=<url>` on stdout and, when forked, also sends
 * `{ type: 'ready', url }` over IPC. Answers `{ type: 'stats' }` with the
 * server's counters. Stays up until `{ type: 'stop' }`, SIGTERM/SIGINT, or the
 * parent going away.
 */
import { keyPairFromPrivate, startFakeWhatsAppServer } from '../test/support/wa-server/index.js'

// bench/sessions.ts imports only this file's types (a value import would run main() there).
const ROOT_PRIVATE_ENV = 'BENCH_WA_ROOT_PRIVATE'

export interface WaServerStats {
  type: 'stats'
  logins: number
  registrations: number
  openConnections: number
  protocolErrors: string[]
  rss: number
}

export type WaServerMessage = { type: 'ready', url: string } | { type: 'failed', message: string } | WaServerStats

function send (message: WaServerMessage): void {
  if (process.send !== undefined) process.send(message)
}

async function main (): Promise<void> {
  const hex = process.env[ROOT_PRIVATE_ENV] ?? process.argv[2]
  if (hex === undefined || !/^[0-9a-f]{64}$/i.test(hex)) {
    throw new Error(`${ROOT_PRIVATE_ENV} (or the first argument) must be a 32-byte private key in hex`)
  }
  const server = await startFakeWhatsAppServer({ root: keyPairFromPrivate(Buffer.from(hex, 'hex')) })

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    const timer = setTimeout(() => { process.exit(0) }, 3_000)
    timer.unref()
    server.close().then(() => { process.exit(0) }, () => { process.exit(0) })
  }
  process.on('message', (message: unknown) => {
    const type = (message as { type?: unknown } | null)?.type
    if (type === 'stop') stop()
    if (type === 'stats') {
      send({
        type: 'stats',
        logins: server.logins,
        registrations: server.registrations,
        openConnections: server.openConnections(),
        protocolErrors: [...server.protocolErrors].slice(-20),
        rss: process.memoryUsage().rss
      })
    }
  })
  process.on('disconnect', stop)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  process.stdout.write(`WA_URL=${server.url}\n`)
  send({ type: 'ready', url: server.url })
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.stack ?? error.message : String(error)
  send({ type: 'failed', message })
  process.stderr.write(`sessions-wa-server: ${message}\n`)
  process.exit(1)
})
