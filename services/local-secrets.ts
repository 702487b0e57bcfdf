import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateToken } from './tokens.js'

export interface LocalSecret {
  value: string
  /** True when this call generated the secret, so the caller can say where it is. */
  created: boolean
}

async function readSecret (path: string): Promise<string | null> {
  let content: string
  try {
    content = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
  const value = content.trim()
  if (value === '') throw new Error(`${path} is empty: put a secret in it, or delete it to have one generated`)
  return value
}

/**
 * Reads a secret kept in a file of DATA_DIR, generating it on first use with
 * mode 0600. The new file is written in full under a temporary name and then
 * hard-linked into place, which fails if the name exists: a reader never sees
 * a half-written secret, and two processes starting at once agree on one value.
 */
export async function loadOrCreateSecret (path: string): Promise<LocalSecret> {
  const existing = await readSecret(path)
  if (existing !== null) return { value: existing, created: false }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const value = generateToken()
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`
  await writeFile(temporary, value + '\n', { mode: 0o600 })
  try {
    await link(temporary, path)
    return { value, created: true }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return { value: await readSecret(path) ?? value, created: false }
  } finally {
    await rm(temporary, { force: true })
  }
}

/**
 * The configured value when there is one; otherwise the secret kept in
 * `dataDir/fileName`, generated on first use. `path` is where it came from
 * (null when configured), so the caller can say so in the log.
 */
export async function configuredOrLocalSecret (configured: string | undefined, dataDir: string, fileName: string): Promise<LocalSecret & { path: string | null }> {
  if (configured !== undefined) return { value: configured, created: false, path: null }
  const path = join(dataDir, fileName)
  return { ...await loadOrCreateSecret(path), path }
}
