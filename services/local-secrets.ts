import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateToken } from './tokens.js'

export interface LocalSecret {
  value: string
  /** True when this call generated the secret, so the caller can say where it is. */
  created: boolean
}

/**
 * Reads a secret kept in a file of DATA_DIR, generating it on first use. The
 * file is created exclusively with mode 0600, so two processes starting at
 * once agree on one value and no other user can read it.
 */
export async function loadOrCreateSecret (path: string): Promise<LocalSecret> {
  try {
    return { value: (await readFile(path, 'utf8')).trim(), created: false }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const value = generateToken()
  try {
    await writeFile(path, value + '\n', { mode: 0o600, flag: 'wx' })
    return { value, created: true }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return { value: (await readFile(path, 'utf8')).trim(), created: false }
  }
}
