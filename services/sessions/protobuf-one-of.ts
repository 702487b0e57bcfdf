import { createRequire } from 'node:module'

/**
 * Keeps Baileys' generated protobuf code from slowing down every object the
 * process creates afterwards.
 *
 * protobufjs' `util.oneOfGetter` keeps, for each oneof, a map of its field
 * names built as `{}` plus one property per name. WAProto builds 2,227 of them
 * when it loads, and they live as long as the process. V8 caches at most about
 * 1,500 first-property transitions on the shared map that every `{}` starts
 * from, and these take them all: from then on each object built from `{}` with
 * a property name the cache has not seen gets a fresh hidden class of its own,
 * each time, with the inline caches that meet it going megamorphic. That hits
 * objects Node and Fastify make on every request (`process.nextTick` alone
 * became 2.3× slower). Counted with callgrind on the list route: 446,000
 * user-space instructions a request before, 230,000 after (README, Benchmarks).
 *
 * The replacement answers exactly as the original, from a Set, which adds no
 * transitions. It must run before WAProto is evaluated: services/sessions/baileys.ts
 * imports it ahead of Baileys, and the app imports Baileys only through that module.
 */
interface ProtobufUtil {
  oneOfGetter: (fieldNames: string[]) => (this: Record<string, unknown>) => string | undefined
}

// The protobufjs that Baileys itself resolves, whatever the install layout.
const requireFromBaileys = createRequire(import.meta.resolve('@whiskeysockets/baileys'))
const { util } = requireFromBaileys('protobufjs/minimal.js') as { util: ProtobufUtil }

util.oneOfGetter = function oneOfGetter (fieldNames) {
  const fields = new Set(fieldNames)
  // The name of the oneof's field that is set, if any: the last one set wins, as in protobufjs.
  return function (this: Record<string, unknown>) {
    const keys = Object.keys(this)
    for (let index = keys.length - 1; index >= 0; index--) {
      const key = keys[index] as string
      if (fields.has(key) && this[key] !== undefined && this[key] !== null) return key
    }
    return undefined
  }
}
