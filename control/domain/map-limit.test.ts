import { expect, test } from "bun:test"
import { mapLimit } from "./map-limit.ts"

test("mapLimit keeps at most `limit` in flight and returns results in input order", async () => {
  let inFlight = 0
  let peak = 0
  const out = await mapLimit([50, 10, 30, 5, 20, 1], 3, async (delay, i) => {
    peak = Math.max(peak, ++inFlight)
    await Bun.sleep(delay)
    inFlight--
    return i
  })
  expect(out).toEqual([0, 1, 2, 3, 4, 5])
  expect(peak).toBe(3)
})
