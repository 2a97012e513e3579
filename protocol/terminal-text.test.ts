// Text made safe for a terminal: nothing a terminal acts on survives, what was there stays visible,
// and JSON made safe is still the same JSON.
import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { firstControl } from "../tests/support/terminal.ts"
import { jsonSafe, terminalLine, terminalText } from "./terminal-text.ts"

const hostile = fc.string({
  unit: fc.oneof(
    fc.constantFrom("\x1b", "\x07", "\r", "\n", "\t", "\x7f", "\x9b", "\u202e", "\u2066", "\u200f", "\u2028", "\ufeff"),
    fc.string({ unit: "binary", maxLength: 3 }),
  ),
  maxLength: 40,
})

describe("terminal text", () => {
  test("a line keeps no character a terminal acts on, newlines and tabs included", () => {
    fc.assert(fc.property(hostile, (s) => firstControl(terminalLine(s).replaceAll("\n", "\x00")) === null))
  })

  test("text keeps its newlines and tabs, and nothing else a terminal acts on", () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const out = terminalText(s)
        return firstControl(out.replaceAll("\t", "")) === null && out.split("\n").length === s.split("\n").length
      }),
    )
  })

  test("what was there is shown escaped, so a person sees it", () => {
    expect(terminalLine("\x1b]0;owned\x07v1\r\nfake\u202eabc\x9b2J")).toBe(
      "\\x1b]0;owned\\x07v1\\r\\nfake\\u202eabc\\u009b2J",
    )
    expect(terminalText("line 1\n\tline 2\x1b[2J")).toBe("line 1\n\tline 2\\x1b[2J")
    expect(terminalLine("plain ünïcode ✓ 漢字")).toBe("plain ünïcode ✓ 漢字")
  })

  test("escaping is idempotent: text escaped twice reads as text escaped once", () => {
    fc.assert(fc.property(hostile, (s) => terminalLine(terminalLine(s)) === terminalLine(s)))
  })

  test("JSON made safe parses to the same value and holds nothing a terminal acts on", () => {
    fc.assert(
      fc.property(fc.jsonValue(), hostile, (value, s) => {
        const plain = JSON.stringify({ value, s }, null, 2)
        const json = jsonSafe(plain)
        return firstControl(json) === null && Bun.deepEquals(JSON.parse(json), JSON.parse(plain))
      }),
    )
  })
})
