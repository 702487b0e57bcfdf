import { createHmac } from 'node:crypto'
import { refuseResolvedDestination } from './destination.js'

/** One event on its way to one webhook target, as kept in the outbox. */
export interface Delivery {
  /** The event's id: unique per target, and sent as X-Webhook-Id so receivers can deduplicate. */
  id: string
  instanceId: string
  label: string
  url: string
  /** The envelope, serialized once: the exact bytes that are signed. */
  body: string
  authorizationSealed: string | null
  secretSealed: string
  attempts: number
  lastError: string | null
  createdAt: string
}

export interface DeadLetter extends Delivery {
  failedAt: string
}

export type DeliveryOutcome =
  | { kind: 'delivered' }
  /** Network error, timeout, 429 or 5xx: worth another attempt. */
  | { kind: 'retry', error: string }
  /** Any other answer, or a refused destination: retrying would not help. */
  | { kind: 'reject', error: string }

export interface DeliveryOptions {
  timeoutMs: number
  allowPrivate: boolean
  open: (sealed: string) => string
}

export const SIGNATURE_HEADER = 'x-webhook-signature'

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the instance's
 * secret: the receiver recomputes it and rejects old timestamps, which stops
 * both forgery and replay.
 */
export function signature (secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

export async function deliverOnce (delivery: Delivery, options: DeliveryOptions): Promise<DeliveryOutcome> {
  const url = new URL(delivery.url)
  if (!options.allowPrivate) {
    try {
      const refusal = await refuseResolvedDestination(url)
      if (refusal !== null) return { kind: 'reject', error: `Refused destination: ${refusal}` }
    } catch (error) {
      return { kind: 'retry', error: `DNS: ${(error as Error).message}` }
    }
  }
  const timestamp = Math.floor(Date.now() / 1000)
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'wa-gateway-webhooks',
    'x-webhook-id': delivery.id,
    [SIGNATURE_HEADER]: signature(options.open(delivery.secretSealed), timestamp, delivery.body)
  }
  if (delivery.authorizationSealed !== null) headers.authorization = options.open(delivery.authorizationSealed)
  try {
    const response = await fetch(url, { method: 'POST', headers, body: delivery.body, redirect: 'manual', signal: AbortSignal.timeout(options.timeoutMs) })
    await response.body?.cancel()
    if (response.status >= 200 && response.status < 300) return { kind: 'delivered' }
    const error = `HTTP ${response.status}`
    return response.status === 429 || response.status >= 500 ? { kind: 'retry', error } : { kind: 'reject', error }
  } catch (error) {
    const cause = (error as { cause?: Error }).cause
    return { kind: 'retry', error: cause?.message ?? (error as Error).message }
  }
}
