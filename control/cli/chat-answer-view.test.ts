// The draft of a block still arriving is redrawn in place, so it must fit on the screen: rows that
// scrolled off the top could not be erased and would be left behind, duplicated, in the scrollback.
import { describe, expect, test } from "bun:test"
import { tailLines } from "./chat-answer-view.ts"

describe("the streaming draft", () => {
  test("fits as it is when it can", () => {
    expect(tailLines(["a", "b"], 5, 10)).toEqual(["a", "b"])
  })

  test("a tall draft shows its last lines under a mark", () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i}`)
    expect(tailLines(lines, 4, 20)).toEqual(["…", "line 47", "line 48", "line 49"])
  })

  test("a line longer than the room left shows its end, and the whole never takes more rows than given", () => {
    const long = `${"x".repeat(95)}END`
    const shown = tailLines(["first", long], 3, 10)
    expect(shown[0]).toBe("…")
    expect(shown.at(-1)?.endsWith("END")).toBe(true)
    const rows = shown.reduce((n, l) => n + Math.max(1, Math.ceil(Bun.stringWidth(l) / 10)), 0)
    expect(rows).toBeLessThanOrEqual(3)
  })
})
