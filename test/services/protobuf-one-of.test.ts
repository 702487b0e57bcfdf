import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { proto } from '../../services/sessions/baileys.js'

const run = promisify(execFile)
const PROBE = fileURLToPath(new URL('../support/shape-cache-probe.mjs', import.meta.url))
const APP = fileURLToPath(new URL('../../app.ts', import.meta.url))
const LIBRARY_BAILEYS = import.meta.resolve('@whiskeysockets/baileys')
const WANTED = 500

/** How many fresh `{}` shapes V8 can still share after loading `module` in a new process (at most WANTED). */
async function sharedShapesAfterLoading (module: string): Promise<number> {
  const { stdout } = await run(process.execPath, ['--allow-natives-syntax', '--import', '@tapjs/typescript/import', PROBE, module, String(WANTED)])
  return Number(stdout)
}

/** protobufjs' oneof getters (`_field` for an optional field) are not in Baileys' typings. */
const oneOf = (message: object, getter: string): unknown => (message as Record<string, unknown>)[getter]

t.test('oneof getters still name the field that is set', async t => {
  t.equal(oneOf(proto.ADVDeviceIdentity.create({ rawId: 7 }), '_rawId'), 'rawId')
  t.equal(oneOf(proto.ADVDeviceIdentity.create({}), '_rawId'), undefined, 'nothing set')
  t.equal(oneOf(proto.ADVDeviceIdentity.create({ rawId: null }), '_rawId'), undefined, 'null counts as unset')

  const decoded = proto.ADVDeviceIdentity.decode(proto.ADVDeviceIdentity.encode({ rawId: 3, timestamp: 9 }).finish())
  t.equal(oneOf(decoded, '_rawId'), 'rawId', 'after a round trip through the wire format')
  t.equal(oneOf(decoded, '_keyIndex'), undefined)
})

t.test('loading the app leaves V8 its cache of object shapes', async t => {
  // Baileys' generated protobuf code alone fills the cache: this is what the fix prevents.
  t.equal(await sharedShapesAfterLoading(LIBRARY_BAILEYS), 0, 'Baileys loaded directly fills the cache')
  t.equal(await sharedShapesAfterLoading(APP), WANTED, 'the whole app, which loads Baileys through services/sessions/baileys.ts, leaves room')
})
