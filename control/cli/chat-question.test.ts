// A question put to a person without a terminal (a pipe): the next line answers it, and only a clear
// yes approves; an option is chosen by its number; the question's text, context and options, which
// carry the model's words, reach the screen escaped.
import { describe, expect, test } from "bun:test"
import type { Question } from "../../protocol/ai.ts"
import { firstControl } from "../../tests/support/terminal.ts"
import type { ChatInput } from "./chat-input.ts"
import { askQuestion } from "./chat-question.ts"
import { styled } from "./output.ts"

/** A piped input holding `lines`; the prompts it was given are kept in `prompts`. */
function piped(lines: (string | null)[], prompts: string[] = []): ChatInput {
  return {
    interactive: false,
    line: async (prompt) => {
      prompts.push(styled(prompt))
      return lines.length > 0 ? (lines.shift() ?? null) : null
    },
    watchInterrupt: () => () => {},
    close: () => {},
  }
}

async function printed(run: () => Promise<unknown>): Promise<[unknown, string]> {
  const written: string[] = []
  const real = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write
  try {
    return [await run(), written.join("")]
  } finally {
    process.stdout.write = real
  }
}

const confirm: Question = {
  id: 7,
  type: "confirmation",
  confirmationType: "approve_reject",
  text: "Run this high-risk command on web-1?",
  context: "systemctl restart nginx",
  options: [],
  expiresAt: "2026-12-06T05:00:00.000Z",
}
const choice: Question = {
  ...confirm,
  type: "multipleChoice",
  confirmationType: null,
  text: "Which generation?",
  options: ["41", "42 \x1b[2J"],
}

describe("a question from a pipe", () => {
  test("only a clear yes approves", async () => {
    for (const [line, positive] of [
      ["yes", true],
      ["Y", true],
      ["approve", true],
      ["no", false],
      ["sure, why not", false],
      ["", false],
    ] as const) {
      const [answer] = await printed(() => askQuestion(confirm, piped([line])))
      expect({ line, answer }).toEqual({ line, answer: { positive, selectedOption: -1 } })
    }
    const [ended] = await printed(() => askQuestion(confirm, piped([null])))
    expect(ended).toBeNull()
  })

  test("an option by its number, anything else declines", async () => {
    expect((await printed(() => askQuestion(choice, piped(["2"]))))[0]).toEqual({ positive: true, selectedOption: 1 })
    expect((await printed(() => askQuestion(choice, piped(["3"]))))[0]).toEqual({ positive: false, selectedOption: -1 })
    expect((await printed(() => askQuestion(choice, piped(["42"]))))[0]).toEqual({
      positive: false,
      selectedOption: -1,
    })
  })

  test("text, context and options are shown escaped", async () => {
    const hostile = { ...choice, text: "Pick\r\x1b]0;owned\x07", context: "a\nb\u202e" }
    const prompts: string[] = []
    const [, out] = await printed(() => askQuestion(hostile, piped(["1"], prompts)))
    expect(firstControl(out + prompts.join(""))).toBeNull()
    expect(out).toContain("Pick\\r\\x1b]0;owned\\x07")
    expect(prompts[0]).toContain("2) 42 \\x1b[2J")
    expect(out).toContain("    a\n    b\\u202e")
  })
})
