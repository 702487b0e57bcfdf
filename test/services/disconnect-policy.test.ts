import t from 'tap'
import { backoffDelay } from '../../services/backoff.js'
import { BAD_SESSION_LIMIT, decideRecovery, staysOnline } from '../../services/sessions/disconnect-policy.js'

const online = { pairing: false, consecutiveBadSessions: 0 }
const pairing = { pairing: true, consecutiveBadSessions: 0 }

t.test('the recovery table, row by row', async t => {
  const rows: Array<[string, number | null, typeof online, ReturnType<typeof decideRecovery>]> = [
    ['restart required', 515, online, { kind: 'restart', detail: 'restart_required' }],
    ['connection closed', 428, online, { kind: 'retry', detail: 'connection_closed', badSession: false }],
    ['connection lost / timed out / failed dial', 408, online, { kind: 'retry', detail: 'network_error', badSession: false }],
    ['QR refs exhausted while pairing', 408, pairing, { kind: 'stop', detail: 'qr_timeout' }],
    ['service unavailable', 503, online, { kind: 'retry', detail: 'service_unavailable', badSession: false }],
    ['bad session', 500, online, { kind: 'retry', detail: 'bad_session', badSession: true }],
    ['logged out', 401, online, { kind: 'logged_out', detail: 'logged_out' }],
    ['forbidden', 403, online, { kind: 'logged_out', detail: 'forbidden' }],
    ['banned', 406, online, { kind: 'logged_out', detail: 'banned' }],
    ['temporarily banned', 402, online, { kind: 'stop', detail: 'temp_banned' }],
    ['multi-device mismatch', 411, online, { kind: 'stop', detail: 'multidevice_mismatch' }],
    ['connection replaced', 440, online, { kind: 'stop', detail: 'connection_replaced' }],
    ['no code at all', null, online, { kind: 'retry', detail: 'network_error', badSession: false }],
    ['an unknown code', 599, online, { kind: 'retry', detail: 'network_error', badSession: false }]
  ]
  for (const [label, code, context, expected] of rows) t.same(decideRecovery(code, context), expected, `${String(code)}: ${label}`)
})

t.test('a run of bad sessions trips the circuit breaker', async t => {
  t.same(decideRecovery(500, { pairing: false, consecutiveBadSessions: BAD_SESSION_LIMIT - 2 }).kind, 'retry')
  t.same(decideRecovery(500, { pairing: false, consecutiveBadSessions: BAD_SESSION_LIMIT - 1 }), { kind: 'stop', detail: 'failed' })
  t.same(decideRecovery(428, { pairing: false, consecutiveBadSessions: BAD_SESSION_LIMIT }).kind, 'retry', 'only bad sessions count')
})

t.test('terminal closes take the instance offline; retries and restarts keep it online', async t => {
  t.ok(staysOnline({ kind: 'restart', detail: 'x' }))
  t.ok(staysOnline({ kind: 'retry', detail: 'x', badSession: false }))
  t.notOk(staysOnline({ kind: 'logged_out', detail: 'x' }))
  t.notOk(staysOnline({ kind: 'stop', detail: 'x' }))
})

t.test('backoff: 1 s doubling to a 60 s cap, jittered, never below half', async t => {
  const options = { baseMs: 1000, maxMs: 60_000 }
  const low = (attempt: number): number => backoffDelay(attempt, options, () => 0)
  const high = (attempt: number): number => backoffDelay(attempt, options, () => 1)
  t.same([1, 2, 3, 4, 5, 6, 7, 8].map(high), [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000])
  t.same([1, 2, 3, 7, 100].map(low), [500, 1000, 2000, 30000, 30000])
  for (let i = 0; i < 100; i++) {
    const delay = backoffDelay(3, options)
    t.ok(delay >= 2000 && delay <= 4000)
  }
  const hourOfOutage = Array.from({ length: 200 }, (_, i) => low(i + 1)).reduce((sum, delay) => sum + delay, 0)
  t.ok(hourOfOutage > 3_600_000, 'an hour-long outage takes well under 200 attempts: never a hot loop')
})
