// Compaction keeps a long conversation within the model's context: everything before the latest user
// message is summarised by the model into one `summary` message, and the latest exchange is kept as
// it is. It runs before a model call whose conversation is estimated above `[ai] max_context_tokens`,
// and on request. Only the summarised messages are replaced: what was appended during the model's
// summary (a question settled by its expiry, or on another replica) stays after it.
import type { ChatMessage, CompactResponse } from "../../protocol/ai.ts"
import type { Clock } from "../domain/ports.ts"
import type { ChatRecord, ChatStorePort } from "./chat-records.ts"
import { estimateTokens } from "./conversation.ts"
import type { LlmPort } from "./llm-port.ts"
import { callModel } from "./model-call.ts"

const SUMMARISE = `You compact an operations chat about a NixOS fleet. Summarise the transcript you are given in a few short paragraphs: what the user asked, what was found (node names, states, command outputs that matter), which actions were proposed, approved, rejected or run, and what is still open. Keep exact names, hashes and numbers. Write only the summary.`

const MAX_LINE = 4000

export interface CompactionDeps {
  llm: LlmPort
  store: ChatStorePort
  clock: Clock
  timeoutMs: number
}

function transcript(messages: ChatMessage[]): string {
  const line = (m: ChatMessage) => {
    const who =
      m.role === "tool"
        ? `Tool result (${m.toolName ?? "?"})`
        : m.role === "summary"
          ? "Earlier summary"
          : m.role === "user"
            ? "User"
            : "Assistant"
    const calls = m.toolCalls?.length
      ? ` [called ${m.toolCalls.map((c) => `${c.name} ${JSON.stringify(c.args)}`).join("; ")}]`
      : ""
    const text = m.content.length > MAX_LINE ? `${m.content.slice(0, MAX_LINE)}…` : m.content
    return `${who}: ${text}${calls}`
  }
  return messages.map(line).join("\n\n")
}

export async function compact(deps: CompactionDeps, chat: ChatRecord, cancel: AbortSignal): Promise<CompactResponse> {
  const messages = await deps.store.messages(chat.id)
  const before = estimateTokens("", messages)
  let cut = -1
  for (let i = messages.length - 1; i >= 0; i--)
    if (messages[i]?.role === "user") {
      cut = i
      break
    }
  // Nothing before the latest user message, or only one summary already: nothing to gain.
  const older = cut > 0 ? messages.slice(0, cut) : []
  if (older.length === 0 || (older.length === 1 && older[0]?.role === "summary"))
    return { success: true, summarisedMessages: 0, summary: "", tokensBefore: before, tokensAfter: before }
  const reply = await callModel(
    deps.llm,
    {
      model: chat.model,
      system: SUMMARISE,
      messages: [{ role: "user", content: transcript(older) }],
      tools: [],
      maxTokens: 2048,
    },
    { emit: null, cancel, timeoutMs: deps.timeoutMs },
  )
  if (reply.cancelled)
    return { success: true, summarisedMessages: 0, summary: "", tokensBefore: before, tokensAfter: before }
  const summary: ChatMessage = { role: "summary", content: reply.text.trim(), at: deps.clock.now().toISOString() }
  const kept = [summary, ...messages.slice(cut)]
  if (!(await deps.store.replaceHead(chat.id, older.length, summary)))
    return { success: true, summarisedMessages: 0, summary: "", tokensBefore: before, tokensAfter: before }
  return {
    success: true,
    summarisedMessages: older.length,
    summary: summary.content,
    tokensBefore: before,
    tokensAfter: estimateTokens("", kept),
  }
}
