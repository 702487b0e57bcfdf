/**
 * The requests bench/http.ts (req/s) and bench/instructions.ts (instructions
 * per request) measure, and the HTTP steps that prepare them: both benchmarks
 * must load exactly the same routes for their figures to be comparable.
 */

import { randomBytes } from 'node:crypto'
import { SERVER_ENV } from './protocol.js'

export type StoreName = 'bare' | 'file' | 'redis'

export interface CaseSpec {
  id: string
  store: StoreName
  route: string
  method: 'GET' | 'POST'
  path: string
  token?: string
  expectedStatus: number
  expectedMessage?: string
}

const INSTANCE_NAME = 'bench'
const NO_SESSION_MESSAGE = 'Instance has no saved session, call /connect first'

/** The app's limit in a benchmark: every request is counted, and the limit stays out of reach. */
export const RATE_LIMIT_MAX = '100000000'

/**
 * The settings of an app server (bench/server.ts), the same in every benchmark,
 * with the fresh admin token that createTenant() then needs.
 */
export function appServerSettings (redisUrl: string | undefined, logLevel: string): { adminToken: string, env: Record<string, string | undefined> } {
  const adminToken = randomBytes(24).toString('hex')
  return {
    adminToken,
    env: {
      [SERVER_ENV.adminToken]: adminToken,
      [SERVER_ENV.redisUrl]: redisUrl,
      [SERVER_ENV.logLevel]: logLevel,
      [SERVER_ENV.rateLimitMax]: RATE_LIMIT_MAX
    }
  }
}

export const BARE_CASE: CaseSpec = { id: 'bare', store: 'bare', route: 'GET /bare (plain Fastify, no plugins)', method: 'GET', path: '/bare', expectedStatus: 200 }

/** The app's measured routes, for the tenant createTenant() made. */
export function appCases (store: 'file' | 'redis', token: string): CaseSpec[] {
  return [
    {
      id: `${store}:list`,
      store,
      route: 'GET /api/instance/list?instanceName=<name>',
      method: 'GET',
      path: `/api/instance/list?instanceName=${INSTANCE_NAME}`,
      token,
      expectedStatus: 200,
      expectedMessage: '1 Instance found'
    },
    {
      id: `${store}:reconnect-400`,
      store,
      route: 'POST /api/instance/reconnect/<name> (no session: 400)',
      method: 'POST',
      path: `/api/instance/reconnect/${INSTANCE_NAME}`,
      token,
      expectedStatus: 400,
      expectedMessage: NO_SESSION_MESSAGE
    }
  ]
}

interface Sample { status: number, body: unknown }

export async function request (base: string, method: string, path: string, token?: string, body?: unknown): Promise<Sample> {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.token = token
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch { /* not JSON: keep the text */ }
  return { status: response.status, body: parsed }
}

function messageOf (body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const error = (body as { error?: { message?: unknown } }).error
  if (typeof error?.message === 'string') return error.message
  const message = (body as { message?: unknown }).message
  return typeof message === 'string' ? message : undefined
}

/** An account and one instance, created over HTTP as a client would; returns the account's token. */
export async function createTenant (base: string, adminToken: string): Promise<string> {
  const account = await request(base, 'POST', '/api/account', adminToken, { name: 'bench' })
  if (account.status !== 201) throw new Error(`account creation answered ${account.status}: ${JSON.stringify(account.body)}`)
  const accountToken = (account.body as { account?: { token?: unknown } }).account?.token
  if (typeof accountToken !== 'string') throw new Error(`account creation returned no token: ${JSON.stringify(account.body)}`)
  const instance = await request(base, 'POST', '/api/instance/new', accountToken, { name: INSTANCE_NAME })
  if (instance.status !== 201) throw new Error(`instance creation answered ${instance.status}: ${JSON.stringify(instance.body)}`)
  return accountToken
}

/** One request checked by hand, returning what is wrong with it: the status must be the expected one (a 429 would mean the limiter, not the route, answered). */
export async function checkSample (base: string, spec: CaseSpec, when: string): Promise<string[]> {
  const sample = await request(base, spec.method, spec.path, spec.token)
  const problems: string[] = []
  if (sample.status !== spec.expectedStatus) problems.push(`${when}: sample answered ${sample.status} (expected ${spec.expectedStatus}): ${JSON.stringify(sample.body)}`)
  else if (spec.expectedMessage !== undefined && messageOf(sample.body) !== spec.expectedMessage) problems.push(`${when}: sample message was ${JSON.stringify(messageOf(sample.body))}, expected ${JSON.stringify(spec.expectedMessage)}`)
  return problems
}
