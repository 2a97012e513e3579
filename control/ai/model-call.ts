// One call to the model within a turn: streams its text to the turn's listeners as `token` events,
// collects its tool calls and usage, and bounds it by `[ai] timeout_seconds`. A cancel ends it early
// with what it had said so far; a provider too slow is a TIMEOUT (504), one that fails or cannot be
// reached is AI_UNAVAILABLE (503).
import { ChimeraError } from "../domain/errors.ts"
import { LlmError, type LlmPort, type LlmRequest, type LlmToolCall } from "./llm-port.ts"
import type { Listener } from "./turns.ts"

export interface ModelReply {
  text: string
  calls: LlmToolCall[]
  inputTokens: number
  outputTokens: number
  cancelled: boolean
}

export async function callModel(
  llm: LlmPort,
  request: Omit<LlmRequest, "signal">,
  opts: { emit: Listener | null; cancel: AbortSignal; timeoutMs: number },
): Promise<ModelReply> {
  const controller = new AbortController()
  const timer = setTimeout(
    () =>
      controller.abort(
        new LlmError("timeout", `the model did not finish its answer within ${opts.timeoutMs / 1000} s`),
      ),
    opts.timeoutMs,
  )
  const onCancel = () => controller.abort(new LlmError("aborted", "cancelled"))
  if (opts.cancel.aborted) onCancel()
  opts.cancel.addEventListener("abort", onCancel)
  const reply: ModelReply = { text: "", calls: [], inputTokens: 0, outputTokens: 0, cancelled: false }
  try {
    for await (const e of llm.stream({ ...request, signal: controller.signal })) {
      if (e.type === "text") {
        reply.text += e.text
        opts.emit?.({ event: "token", data: { text: e.text } })
      } else if (e.type === "tool_call") reply.calls.push(e.call)
      else {
        reply.inputTokens = e.inputTokens
        reply.outputTokens = e.outputTokens
      }
    }
    if (controller.signal.aborted) throw controller.signal.reason
    return reply
  } catch (error) {
    const failure =
      controller.signal.aborted && controller.signal.reason instanceof LlmError ? controller.signal.reason : error
    if (failure instanceof LlmError) {
      if (failure.kind === "aborted") return { ...reply, calls: [], cancelled: true }
      if (failure.kind === "timeout") throw new ChimeraError("TIMEOUT", failure.message)
      throw new ChimeraError("AI_UNAVAILABLE", `the AI provider failed: ${failure.message}`)
    }
    throw new ChimeraError(
      "AI_UNAVAILABLE",
      `the AI provider failed: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500),
    )
  } finally {
    clearTimeout(timer)
    opts.cancel.removeEventListener("abort", onCancel)
  }
}
