import { hash, randomBytes } from 'node:crypto'

/** 32 random bytes, hex: shown once to its owner, never stored. */
export function generateToken (): string {
  return randomBytes(32).toString('hex')
}

/** What the stores keep instead of a token. (The one-shot hash: it runs on every request.) */
export function hashToken (token: string): string {
  return hash('sha256', token, 'hex')
}
