import { createHash, randomBytes } from 'node:crypto'

/** 32 random bytes, hex: shown once to its owner, never stored. */
export function generateToken (): string {
  return randomBytes(32).toString('hex')
}

/** What the stores keep instead of a token. */
export function hashToken (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}
