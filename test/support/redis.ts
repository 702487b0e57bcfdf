import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './ports.js'

export interface TestRedis {
  url: string
  /** A fresh key prefix, so tests sharing one server never see each other's data. */
  prefix: () => string
  /** A new client, closed when the test ends. */
  client: () => Redis
}

const redisServerBinary = spawnSync('redis-server', ['--version']).status === 0

async function spawnPrivateRedis (t: Test): Promise<string> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
    child.once('exit', code => reject(new Error(`redis-server exited with ${String(code)}: ${output}`)))
  })
  child.stdout.resume()
  return `redis://127.0.0.1:${port}`
}

/**
 * A real Redis for a test file: a private redis-server on a free port, else the
 * one named by REDIS_URL. Without either, CI fails loudly and a developer's run
 * skips the Redis suites with a visible notice.
 */
export async function useRedis (t: Test): Promise<TestRedis | null> {
  let url: string | undefined
  if (redisServerBinary) url = await spawnPrivateRedis(t)
  else url = process.env.REDIS_URL
  if (url === undefined) {
    if (process.env.CI === 'true') {
      t.fail('Redis is required under CI=true: install redis-server or set REDIS_URL')
    } else {
      t.comment('NOTICE: no redis-server binary and no REDIS_URL; Redis suites are skipped')
    }
    return null
  }
  const redisUrl = url
  return {
    url: redisUrl,
    prefix: () => `test:${randomUUID()}:`,
    client: () => {
      const client = new Redis(redisUrl)
      t.teardown(async () => { await client.quit() })
      return client
    }
  }
}
