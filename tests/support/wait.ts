// Polls a condition until it holds or the time is up; the error says what was awaited and what was
// last seen, so a failure reads as a sentence rather than a timeout.
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs
  let last: T | undefined
  while (performance.now() < deadline) {
    last = await probe()
    if (ok(last)) return last
    await Bun.sleep(25)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(last)}`)
}
