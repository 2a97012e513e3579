// The RPC's input edge: lines are bounded and decoded, each command is checked with its schema, and
// every line that is not a command gets a reason naming what is wrong, with the `type` and `id` it
// could read, whatever bytes arrive (fast-check generates them).
import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { type Line, readLines } from "./line-reader.ts"
import { parseCommand } from "./parse-command.ts"

async function lines(chunks: (string | Uint8Array)[], max = 32): Promise<Line[]> {
  const enc = new TextEncoder()
  async function* source() {
    for (const c of chunks) yield typeof c === "string" ? enc.encode(c) : c
  }
  const out: Line[] = []
  for await (const l of readLines(source(), max)) out.push(l)
  return out
}

describe("RPC lines", () => {
  test("split across chunks, CRLF or LF, the last without a newline", async () => {
    expect(await lines(['{"type":', '"cancel"}\r\n{"a"', ":1}\n", "tail"])).toEqual([
      { n: 1, text: '{"type":"cancel"}' },
      { n: 2, text: '{"a":1}' },
      { n: 3, text: "tail" },
    ])
  })

  test("an oversized line is reported, not kept, and the next line reads normally", async () => {
    const long = "x".repeat(20)
    expect(await lines([long, long, "\nok\n"])).toEqual([
      { n: 1, problem: "longer than 32 bytes" },
      { n: 2, text: "ok" },
    ])
  })

  test("bytes that are not UTF-8 are a problem of that line only", async () => {
    expect(await lines([new Uint8Array([0xff, 0xfe, 0x0a]), "ok\n"])).toEqual([
      { n: 1, problem: "not UTF-8 text", readable: "\ufffd\ufffd" },
      { n: 2, text: "ok" },
    ])
  })
})

describe("RPC commands", () => {
  test("each command type parses, id optional, string or number", () => {
    for (const line of [
      '{"type":"prompt","id":"r1","message":"List files in src/"}',
      '{"type":"steer","message":"only web-1"}',
      '{"type":"cancel","id":7}',
      '{"type":"get_state"}',
      '{"type":"compact","id":"c"}',
      '{"type":"set_model","model":"gpt-4o"}',
      '{"type":"answer","positive":true}',
      '{"type":"answer","question_id":5001,"positive":true,"selected_option":2}',
    ])
      expect({ line, ok: parseCommand(line).ok }).toEqual({ line, ok: true })
  })

  test("every kind of bad line is named, with the type and id that could be read", () => {
    const cases: [string, string, string, string | number | null][] = [
      ["{oops", "", "not JSON (", null],
      ["[1,2]", "", 'expected a JSON object with a "type"', null],
      ['{"id":"a"}', "", '"type" is missing: expected one of prompt, steer, cancel', "a"],
      ['{"type":3}', "", '"type" must be a string', null],
      ['{"type":"launch","id":2}', "launch", 'unknown type "launch": expected one of', 2],
      ['{"type":"prompt","id":"r2"}', "prompt", 'prompt: "message" is missing', "r2"],
      ['{"type":"prompt","message":42}', "prompt", 'prompt: "message": ', null],
      ['{"type":"prompt","message":""}', "prompt", "expected a non-empty string", null],
      ['{"type":"cancel","mesage":"x"}', "cancel", 'cancel: unknown field "mesage"', null],
      ['{"type":"set_model","model":"a b"}', "set_model", "expected a model name", null],
      ['{"type":"answer"}', "answer", 'answer: "positive" is missing', null],
      ['{"type":"get_state","id":{"x":1}}', "get_state", '"id"', null],
    ]
    for (const [line, command, error, id] of cases) {
      const parsed = parseCommand(line)
      expect(parsed.ok).toBe(false)
      if (parsed.ok) continue
      expect({ line, command: parsed.command, id: parsed.id }).toEqual({ line, command, id })
      expect(parsed.error).toContain(error)
    }
  })

  test("any generated line that is not a command gets a reason, never an exception", () => {
    const anything = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json().map((j) => j),
      fc
        .record(
          { type: fc.oneof(fc.string(), fc.integer(), fc.constantFrom("prompt", "answer", "set_model")) },
          { requiredKeys: [] },
        )
        .map((o) => JSON.stringify(o)),
    )
    fc.assert(
      fc.property(anything, (line) => {
        const parsed = parseCommand(line)
        if (!parsed.ok) expect(parsed.error.length).toBeGreaterThan(0)
      }),
      { numRuns: 2000 },
    )
  })
})
