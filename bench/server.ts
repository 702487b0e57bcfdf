/**
 * The server side of bench/http.ts, run as a child process so the load
 * generator never shares its event loop. Started by the parent with fork();
 * reports `ready` with its URL over IPC and closes cleanly on `stop` (a clean
 * exit is also what lets `--cpu-prof` write its profile).
 */
import Fastify from 'fastify'
import { type ChildMessage, isParentMessage, SERVER_ENV } from './protocol.js'

interface Running {
  url: string
  store: string | null
  close: () => Promise<void>
}

function send (message: ChildMessage): void {
  if (process.send !== undefined) process.send(message)
}

async function startBare (): Promise<Running> {
  const app = Fastify()
  app.get('/bare', async () => ({ ok: true }))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, store: null, close: async () => { await app.close() } }
}

async function startApp (): Promise<Running> {
  // Loaded here, not at the top: the bare baseline must be a process with
  // Fastify alone. With the app's modules (Baileys and its protobuf code)
  // merely loaded, the bare route took about 2 % more instructions per request.
  const { startBenchApp } = await import('./bench-app.js')
  const adminToken = process.env[SERVER_ENV.adminToken]
  if (adminToken === undefined) throw new Error(`${SERVER_ENV.adminToken} is not set`)
  const { app, url, close } = await startBenchApp({
    adminToken,
    logLevel: process.env[SERVER_ENV.logLevel] ?? 'silent',
    rateLimitMax: process.env[SERVER_ENV.rateLimitMax] ?? '100000000',
    redisUrl: process.env[SERVER_ENV.redisUrl]
  })
  return { url, store: app.store.kind, close }
}

async function main (): Promise<void> {
  const mode = process.env[SERVER_ENV.mode]
  let running: Running
  try {
    if (mode === 'bare') running = await startBare()
    else if (mode === 'app') running = await startApp()
    else throw new Error(`unknown ${SERVER_ENV.mode}: ${String(mode)}`)
  } catch (error) {
    send({ type: 'failed', message: error instanceof Error ? error.stack ?? error.message : String(error) })
    process.exitCode = 1
    process.disconnect?.()
    return
  }

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    running.close().then(
      () => { process.exit(0) },
      (error: unknown) => { console.error('bench server: close failed', error); process.exit(1) }
    )
  }
  process.on('message', (message: unknown) => {
    if (!isParentMessage(message)) return
    if (message.type === 'stop') stop()
    else send({ type: 'usage', ...process.cpuUsage() })
  })
  // The parent went away (crash, Ctrl-C): never linger.
  process.on('disconnect', stop)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  send({ type: 'ready', url: running.url, store: running.store })
}

await main()
