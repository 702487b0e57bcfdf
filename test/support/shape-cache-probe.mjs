// Run with --allow-natives-syntax (V8 intrinsics, so plain JavaScript, not
// TypeScript): loads the module named in argv[2], then counts how many new
// property names added to a fresh `{}` still give two objects one shared hidden
// class. V8 keeps a bounded cache of those shapes; when the module filled it,
// the count is 0 and every such object gets a hidden class of its own.
const LIMIT = Number(process.argv[3] ?? 500)
await import(process.argv[2])
let shared = 0
while (shared < LIMIT) {
  const name = `probe_${shared}`
  const first = {}
  first[name] = 1
  const second = {}
  second[name] = 1
  if (!%HaveSameMap(first, second)) break
  shared++
}
process.stdout.write(String(shared))
