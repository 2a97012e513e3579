// Pending questions: an action the model proposed, waiting for a human. A question is created with
// the exact thing that would run as its context and an expiry `[ai] question_ttl_seconds` ahead. It
// is settled once (the store's compare-and-set): approved (the action ran), rejected, expired, or
// withdrawn (the user wrote again instead of answering); each but the approval reaches the model as
// the tool's result saying so. Steering messages sent while a question waits are queued behind it and
// follow its result, whichever way it is settled: they do not withdraw it.
import type { Question } from "../../protocol/ai.ts"
import type { Clock } from "../domain/ports.ts"
import type { ChatRecord, ChatStorePort, QuestionRecord, QuestionStatus } from "./chat-records.ts"
import type { LlmToolCall } from "./llm-port.ts"
import { type ChatTool, describeAction } from "./tools.ts"

export const toWire = (q: QuestionRecord): Question => ({
  id: q.id,
  type: "confirmation",
  confirmationType: q.confirmationType,
  text: q.text,
  context: q.context,
  options: [],
  expiresAt: q.expiresAt,
})

export async function ask(
  store: ChatStorePort,
  clock: Clock,
  ttlSeconds: number,
  chat: ChatRecord,
  call: LlmToolCall,
  tool: ChatTool,
  args: Record<string, unknown>,
): Promise<QuestionRecord> {
  const { text, context } = describeAction(tool, args)
  const now = clock.now()
  return store.addQuestion({
    chatId: chat.id,
    toolCallId: call.id,
    toolName: tool.spec.name,
    toolArgs: args,
    confirmationType: "approve_reject",
    text,
    context,
    model: chat.model,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
  })
}

export const isExpired = (q: QuestionRecord, clock: Clock) => clock.now().getTime() >= Date.parse(q.expiresAt)

/**
 * Settles a pending question without running it, and tells the model why (the messages queued behind
 * it follow that result); false if already settled.
 */
export async function settleUnrun(
  store: ChatStorePort,
  q: QuestionRecord,
  status: Exclude<QuestionStatus, "pending" | "running" | "approved">,
  by: string | null,
  at: Date,
): Promise<boolean> {
  const reason = {
    rejected: `Not run: ${by ?? "the user"} rejected this action.`,
    expired: `Not run: nobody answered the approval question before it expired at ${q.expiresAt}.`,
    withdrawn: "Not run: the user wrote a new message (or cancelled) instead of answering the approval question.",
  }[status]
  const result = { role: "tool" as const, toolCallId: q.toolCallId, toolName: q.toolName, content: reason }
  return store.settleQuestion(q, "pending", status, by, at.toISOString(), { ...result, at: at.toISOString() })
}
