/** Polls until the condition holds (true) or `timeoutMs` pass (false): for `t.ok(await eventually(...), 'what')`. */
export async function eventually (condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise(resolve => setTimeout(resolve, 20))) {
    if (await condition()) return true
  }
  return false
}
