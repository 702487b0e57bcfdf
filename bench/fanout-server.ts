/**
 * The service side of bench/fanout.ts: the real app (buildApp, as server.ts
 * builds it), listening on 127.0.0.1, in its own process. The parent drives it
 * over IPC:
 *
 * - `emit`: stamps the wall clock and calls the real recorder,
 *   `app.recordState(instance, { detail: 'bench_<seq>', … })`, then reports
 *   when it was called, when the recorder reached `bus.publish()` (after the
 *   store update) and when it returned;
 * - a bus listener registered after the event stream's reports (`fanned`) when
 *   the stream's fan-out loop for a bench event is over: on one bus, listeners
 *   run in registration order, one after another;
 * - `profile-start` / `profile-stop`: the V8 CPU profiler (the one behind
 *   `--cpu-prof`), started and stopped around the measured events only, the
 *   profile written as a .cpuprofile file.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import type { ConnectionState } from '../stores/store.js'
import { type BenchApp, startBenchApp } from './bench-app.js'
import { DETAIL_PREFIX, FANOUT_ENV, openFilesLimit, type ServerReply, type ServerRequest, wallNow } from './fanout-protocol.js'

function send (message: ServerReply): void {
  if (process.send !== undefined) process.send(message)
}

async function start (): Promise<BenchApp> {
  const adminToken = process.env[FANOUT_ENV.adminToken]
  if (adminToken === undefined) throw new Error(`${FANOUT_ENV.adminToken} is not set`)
  return await startBenchApp({
    adminToken,
    logLevel: process.env[FANOUT_ENV.logLevel] ?? 'warn',
    rateLimitMax: '1000000000',
    redisUrl: process.env[FANOUT_ENV.redisUrl],
    // Shared by the replicas of one run, so they share the store and the bus channel.
    redisPrefix: process.env[FANOUT_ENV.redisPrefix]
  })
}

async function main (): Promise<void> {
  let running: Awaited<ReturnType<typeof start>>
  try {
    running = await start()
  } catch (error) {
    send({ type: 'failed', message: error instanceof Error ? error.stack ?? error.message : String(error) })
    process.exitCode = 1
    process.disconnect?.()
    return
  }
  const { app, url } = running

  // When the recorder reaches bus.publish(): the store update (and webhook dispatch) are done.
  let publishedAt = 0
  const bus = app.bus
  const publish = bus.publish.bind(bus)
  bus.publish = async (event) => {
    publishedAt = wallNow()
    await publish(event)
  }
  // Registered after the event stream's listener, so it runs right after the stream's fan-out loop.
  const unsubscribe = bus.subscribe(event => {
    if (!event.detail.startsWith(DETAIL_PREFIX)) return
    send({ type: 'fanned', seq: Number(event.detail.slice(DETAIL_PREFIX.length)), at: wallNow() })
  })

  // WebSocket support lives in the /ws routes' own scope, so its server is not on the root
  // instance: the open sockets are counted where every upgrade passes, the HTTP server.
  let openSockets = 0
  app.server.on('upgrade', (_request, socket) => {
    openSockets++
    socket.once('close', () => { openSockets-- })
  })

  let target: { id: string, accountId: string, name: string } | null = null
  const states: ConnectionState[] = ['connecting', 'disconnected']
  let profiler: Session | null = null

  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    unsubscribe()
    try {
      await running.close()
    } finally {
      process.disconnect?.()
    }
  }

  process.on('message', (message: ServerRequest) => {
    void (async () => {
      switch (message.type) {
        case 'clock':
          send({ type: 'clock', id: message.id, now: wallNow() })
          break
        case 'target': {
          const instance = await app.store.findInstanceByName(message.accountId, message.name)
          if (instance === null) throw new Error(`no instance ${message.name} in account ${message.accountId}`)
          target = { id: instance.id, accountId: instance.accountId, name: instance.name }
          send({ type: 'target', instanceId: instance.id })
          break
        }
        case 'emit': {
          if (target === null) throw new Error('emit before target')
          const state = states[message.seq % 2] as ConnectionState
          const previousState = states[(message.seq + 1) % 2] as ConnectionState
          const calledAt = wallNow()
          await app.recordState(target, { state, previousState, detail: `${DETAIL_PREFIX}${message.seq}`, statusCode: null, numberJid: null })
          const returnedAt = wallNow()
          send({ type: 'emitted', seq: message.seq, calledAt, publishedAt, returnedAt })
          break
        }
        case 'count':
          send({ type: 'count', sockets: openSockets })
          break
        case 'profile-start':
          profiler = new Session()
          profiler.connect()
          await profiler.post('Profiler.enable')
          await profiler.post('Profiler.setSamplingInterval', { interval: message.intervalUs })
          await profiler.post('Profiler.start')
          break
        case 'profile-stop': {
          if (profiler === null) throw new Error('profile-stop before profile-start')
          const { profile } = await profiler.post('Profiler.stop')
          profiler.disconnect()
          profiler = null
          await writeFile(message.path, JSON.stringify(profile))
          send({ type: 'profile-stopped', path: message.path })
          break
        }
        case 'stop':
          await stop()
          break
      }
    })().catch((error: unknown) => {
      send({ type: 'failed', message: error instanceof Error ? error.stack ?? error.message : String(error) })
    })
  })
  process.on('disconnect', () => { void stop() })

  send({ type: 'ready', url, store: app.store.kind, bus: app.bus.kind, openFiles: openFilesLimit() })
}

await main()
