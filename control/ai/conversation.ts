// The stored conversation as a provider sees it, and its size. A summary (what compaction kept of
// older turns) reaches the model as a user message that says so. A tool call left without a result
// (a control plane stopped mid-turn) gets one saying so, since both providers refuse a conversation
// with an unanswered call; `unrecorded` gives the words for a call whose result is missing for a
// known reason (an approved action the control plane stopped during).
import type { ChatMessage } from "../../protocol/ai.ts"
import type { LlmMessage, LlmTool } from "./llm-port.ts"

export function toLlmMessages(
  messages: ChatMessage[],
  unrecorded: ReadonlyMap<string, string> = new Map(),
): LlmMessage[] {
  const out: LlmMessage[] = []
  let open = new Map<string, string>()
  const closeOpen = () => {
    for (const [id, name] of open) {
      const content = unrecorded.get(id) ?? "(no result: the turn was interrupted)"
      out.push({ role: "tool", toolCallId: id, toolName: name, content })
    }
    open = new Map()
  }
  for (const m of messages) {
    if (m.role === "tool" && m.toolCallId !== undefined) {
      if (!open.has(m.toolCallId)) continue // its call was compacted away
      open.delete(m.toolCallId)
      out.push({ role: "tool", toolCallId: m.toolCallId, toolName: m.toolName ?? "", content: m.content })
      continue
    }
    closeOpen()
    if (m.role === "assistant") {
      const toolCalls = m.toolCalls ?? []
      for (const c of toolCalls) open.set(c.id, c.name)
      out.push({ role: "assistant", content: m.content, toolCalls })
    } else if (m.role === "summary")
      out.push({ role: "user", content: `Summary of the conversation so far:\n${m.content}` })
    else out.push({ role: "user", content: m.content })
  }
  return out
}

/** Tokens are estimated at four characters each: close enough to decide when to compact. */
export function estimateTokens(system: string, messages: ChatMessage[], tools: LlmTool[] = []): number {
  let chars = system.length + JSON.stringify(tools).length
  for (const m of messages) chars += m.content.length + (m.toolCalls ? JSON.stringify(m.toolCalls).length : 0) + 8
  return Math.ceil(chars / 4)
}
