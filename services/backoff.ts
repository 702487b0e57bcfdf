export interface BackoffOptions {
  baseMs: number
  maxMs: number
}

/**
 * Exponential backoff with equal jitter: attempt 1 waits 0.5–1 × base, each
 * attempt doubles it, capped at maxMs. Half the delay is fixed, so even a
 * long outage never becomes a hot loop.
 */
export function backoffDelay (attempt: number, { baseMs, maxMs }: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}
