import { describe, expect, test } from "bun:test"
import { excessDepth } from "./json-depth.ts"

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

describe("excessDepth", () => {
  test("a body within the limit passes, whether it has few brackets or many", () => {
    expect(excessDepth(nested(4), 4)).toBe(0)
    expect(excessDepth('{"a":{"b":[1,2]}}', 4)).toBe(0)
    // 100 openings, never deeper than 2: past the quick count, the scan decides.
    expect(excessDepth(JSON.stringify(Array.from({ length: 99 }, (_, i) => ({ i }))), 4)).toBe(0)
  })

  test("one level past the limit is refused with the depth reached, on either path", () => {
    expect(excessDepth(nested(5), 4)).toBe(5)
    expect(excessDepth(`[${"{},".repeat(50)}${nested(5)}]`, 4)).toBe(5)
  })

  test("brackets inside strings are not nesting, escaped quotes included", () => {
    const text = JSON.stringify({ s: `"${"[".repeat(100)}\\"` })
    expect(excessDepth(text, 4)).toBe(0)
    expect(excessDepth(`[${text}]`, 1)).toBe(2)
  })
})
