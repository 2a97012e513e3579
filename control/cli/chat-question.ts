// A pending question from the assistant (an action that changes something waits for a person), put
// to the person in `chimera chat`. On a terminal it is a @clack/prompts choice: approve or reject
// (yes/no, confirm/cancel) with "reject" preselected, so a stray Enter never runs anything; or one of
// several options. From a pipe, the next input line answers it: yes/y/approve, no/n/reject, or an
// option's number; anything else rejects it. What would run (the question's context) is shown in
// full first, escaped like every text the model wrote.
import * as p from "@clack/prompts"
import type { Question } from "../../protocol/ai.ts"
import type { ChatInput } from "./chat-input.ts"
import { color, field, promptStream, say } from "./output.ts"

/** The answer to send, or null when the person pressed Ctrl+C instead (the turn is cancelled). */
export type QuestionAnswer = { positive: boolean; selectedOption: number } | null

const LABELS: Record<NonNullable<Question["confirmationType"]>, [yes: string, no: string]> = {
  approve_reject: ["Approve", "Reject"],
  yes_no: ["Yes", "No"],
  confirm_cancel: ["Confirm", "Cancel"],
}

const POSITIVE = /^(y|yes|approve|confirm|ok)$/i

/** The question in full; without its text when a prompt is about to ask it. */
export function showQuestion(q: Question, withText = true): void {
  if (withText) say(`${color.yellow("?")} ${color.bold(field(q.text))}\n`)
  for (const line of q.context.split("\n")) say(`    ${color.cyan(field(line))}\n`)
  say(`  ${color.dim(`expires at ${q.expiresAt}`)}\n`)
}

export async function askQuestion(q: Question, input: ChatInput): Promise<QuestionAnswer> {
  showQuestion(q, !input.interactive)
  if (!input.interactive) return _fromLine(q, input)
  if (q.type === "multipleChoice") {
    const choice = await p.select({
      message: field(q.text),
      options: q.options.map((label, i) => ({ value: i, label: field(label) })),
      output: promptStream,
    })
    return p.isCancel(choice) ? null : { positive: true, selectedOption: choice }
  }
  const [yes, no] = LABELS[q.confirmationType ?? "approve_reject"]
  const ok = await p.confirm({
    message: field(q.text),
    active: yes,
    inactive: no,
    initialValue: false,
    output: promptStream,
  })
  return p.isCancel(ok) ? null : { positive: ok, selectedOption: -1 }
}

async function _fromLine(q: Question, input: ChatInput): Promise<QuestionAnswer> {
  const hint =
    q.type === "multipleChoice"
      ? q.options.map((o, i) => `${i + 1}) ${field(o)}`).join("  ")
      : LABELS[q.confirmationType ?? "approve_reject"].join("/")
  const line = await input.line(`${color.dim(`answer (${hint})>`)} `)
  if (line === null) return null
  const text = line.trim()
  if (q.type === "multipleChoice") {
    const n = /^\d+$/.test(text) ? Number(text) - 1 : -1
    return n >= 0 && n < q.options.length
      ? { positive: true, selectedOption: n }
      : { positive: false, selectedOption: -1 }
  }
  return { positive: POSITIVE.test(text), selectedOption: -1 }
}
