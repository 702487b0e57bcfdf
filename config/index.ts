import Type, { type Static } from 'typebox'
import Value from 'typebox/value'


/**
 * The whole runtime configuration. It is read from the environment once, in
 * server.ts; everything else receives the validated object.
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_PREFIX: Type.String({ minLength: 1, default: 'wa:' }),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  ENCRYPTION_KEY: Type.Optional(Type.String({ minLength: 16 })),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 100 }),
  RATE_LIMIT_CREATE_MAX: Type.Integer({ minimum: 1, default: 20 }),
  ACCOUNT_INSTANCE_QUOTA: Type.Integer({ minimum: 1, default: 100 }),
  TRUST_PROXY: Type.Boolean({ default: false }),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  WA_WS_URL: Type.String({ pattern: '^wss?://', default: 'wss://web.whatsapp.com/ws/chat' }),
  RECONNECT_DIAL_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  CONNECT_QR_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 60_000 }),
  WA_KEEPALIVE_MS: Type.Integer({ minimum: 500, default: 30_000 }),
  WA_QUERY_TIMEOUT_MS: Type.Integer({ minimum: 500, default: 20_000 }),
  WA_QR_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 100 })),
  WA_LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'warn' }),
  RECONNECT_BACKOFF_BASE_MS: Type.Integer({ minimum: 10, default: 1_000 }),
  RECONNECT_BACKOFF_MAX_MS: Type.Integer({ minimum: 10, default: 60_000 }),
  RESUME_CONCURRENCY: Type.Integer({ minimum: 1, default: 50 }),
  WS_PING_INTERVAL_MS: Type.Integer({ minimum: 100, default: 30_000 }),
  WS_MAX_BUFFERED_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576 }),
  WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({ minimum: 1, default: 8 }),
  WEBHOOK_RETRY_BASE_MS: Type.Integer({ minimum: 10, default: 1_000 }),
  WEBHOOK_RETRY_MAX_MS: Type.Integer({ minimum: 10, default: 300_000 })
})

export type AppConfig = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  constructor (problems: string[]) {
    super(`Invalid configuration:\n${problems.map(problem => `  - ${problem}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

/**
 * Applies defaults, converts strings from the environment to numbers and
 * booleans, drops unknown variables, and fails with every problem at once.
 */
export function loadConfig (source: Record<string, string | undefined>): AppConfig {
  const known = Object.fromEntries(
    Object.keys(ConfigSchema.properties)
      .filter(name => source[name] !== undefined && source[name] !== '')
      .map(name => [name, source[name]])
  )
  const problems = new Map<string, string>()
  // Conversion would quietly truncate "3.5" to 3, so whole numbers are checked as written.
  for (const [name, raw] of Object.entries(known)) {
    const type = (ConfigSchema.properties as Record<string, { type?: string }>)[name]?.type
    if (type === 'integer' && !/^-?\d+$/.test(String(raw).trim())) problems.set(name, 'must be a whole number')
  }
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, known))
  for (const error of Value.Errors(ConfigSchema, value)) {
    const name = error.instancePath.replace(/^\//, '') || 'config'
    if (!problems.has(name)) problems.set(name, error.message)
  }
  if (problems.size > 0) throw new ConfigError([...problems].map(([name, problem]) => `${name}: ${problem}`))
  return value as AppConfig
}
