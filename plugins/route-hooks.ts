/** A route's own hooks of one kind, as a list (Fastify accepts one function or an array). */
export function hookList<Hook> (hooks: Hook | Hook[] | undefined): Hook[] {
  if (hooks === undefined) return []
  return Array.isArray(hooks) ? hooks : [hooks]
}
