import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config/index.js'

let config
try {
  config = loadConfig(process.env)
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  console.error(error.message)
  process.exit(1)
}

let app
try {
  app = await buildApp({ config })
} catch (error) {
  // A start that cannot succeed (DATA_DIR in use, Redis unreachable, …) says why in one line.
  console.error(`wa-gateway cannot start: ${(error as Error).message}`)
  process.exit(1)
}

// SIGTERM/SIGINT: readiness turns 503 at once (return503OnClosing), the server stops
// accepting, open requests finish, sockets end, stores flush; past the delay
// the process exits anyway.
closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS, logger: app.log }, async ({ err, signal }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an unexpected error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
})

await app.listen({ port: config.PORT, host: config.HOST })
