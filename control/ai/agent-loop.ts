// The agent loop: one turn of a chat. It calls the model with the conversation and the tools, streams
// its words, runs the reads it asks for and calls it again with their results, until the model
// answers without a tool call, proposes an action (the turn then ends with that pending question), or
// is cancelled. Steering messages (stored in the chat's queue as they arrive) join the conversation
// before the next model call: one sent during what would have been the last call gets a call of its
// own, and one sent during a call that ends with a question waits behind that question and follows
// its result. A conversation grown past `[ai] max_context_tokens` is compacted first. Everything is
// stored as it happens, so a stopped turn leaves a conversation the next one can go on from.
import type { MessageResponse, ToolEvent } from "../../protocol/ai.ts"
import { createLogger } from "../../protocol/log.ts"
import type { Clock, UserPrincipal } from "../domain/ports.ts"
import type { ChatRecord, ChatStorePort, QuestionRecord } from "./chat-records.ts"
import { compact } from "./compaction.ts"
import { estimateTokens, toLlmMessages } from "./conversation.ts"
import type { InternalApi } from "./internal-api.ts"
import type { LlmPort, LlmToolCall } from "./llm-port.ts"
import { callModel } from "./model-call.ts"
import { ask, toWire } from "./questions.ts"
import { systemPrompt } from "./system-prompt.ts"
import { resultText, runTool } from "./tool-run.ts"
import { CHAT_TOOLS, hiddenFromApprover, needsApproval, toolSpecs } from "./tools.ts"
import type { TurnControl } from "./turns.ts"

const log = createLogger("ai")

export const CANCELLED = "_(cancelled: the answer was stopped at the user's request)_"
const MAX_STEPS = 16

export interface LoopDeps {
  llm: LlmPort
  store: ChatStorePort
  api: InternalApi
  clock: Clock
  timeoutMs: number
  questionTtlSeconds: number
  maxContextTokens: number
  /** A question was asked (its expiry is scheduled). */
  asked(q: QuestionRecord): void
}

export async function runTurn(
  deps: LoopDeps,
  chat: ChatRecord,
  as: UserPrincipal,
  t: TurnControl,
): Promise<MessageResponse> {
  const said: string[] = []
  const tools = toolSpecs()
  const now = () => deps.clock.now().toISOString()
  const answer = (pending: QuestionRecord | null = null, cancelled = false): MessageResponse => ({
    response: said.join("\n\n"),
    pendingQuestion: pending ? toWire(pending) : null,
    ...(cancelled ? { cancelled: true } : {}),
  })
  for (let step = 0; step < MAX_STEPS; step++) {
    await deps.store.deliverQueued(chat.id)
    const system = await systemPrompt(deps.api, as, chat)
    let messages = await deps.store.messages(chat.id)
    if (estimateTokens(system, messages, tools) > deps.maxContextTokens) {
      await compact(deps, chat, t.signal)
      messages = await deps.store.messages(chat.id)
    }
    const sent = toLlmMessages(messages, await unrecordedResults(deps.store, chat.id))
    const reply = await callModel(
      deps.llm,
      { model: chat.model, system, messages: sent, tools, maxTokens: 4096 },
      { emit: t.emit, cancel: t.signal, timeoutMs: deps.timeoutMs },
    )
    log.debug("model call", {
      chat: chat.id,
      model: chat.model,
      step,
      inputTokens: reply.inputTokens,
      outputTokens: reply.outputTokens,
      toolCalls: reply.calls.length,
      cancelled: reply.cancelled,
    })
    if (reply.cancelled) {
      const text = reply.text === "" ? CANCELLED : `${reply.text}\n\n${CANCELLED}`
      await deps.store.appendMessages(chat.id, [{ role: "assistant", content: text, at: now() }])
      said.push(text)
      return answer(null, true)
    }
    await deps.store.appendMessages(chat.id, [
      {
        role: "assistant",
        content: reply.text,
        at: now(),
        ...(reply.calls.length > 0
          ? { toolCalls: reply.calls.map((c) => ({ id: c.id, name: c.name, args: c.args })) }
          : {}),
      },
    ])
    if (reply.text !== "") said.push(reply.text)
    // A steer that arrived during this last call was accepted (200): the model reads it in one more call
    // rather than the turn ending without it. None is accepted once the turn has closed.
    if (reply.calls.length === 0) {
      await t.close()
      if ((await deps.store.deliverQueued(chat.id)).length === 0) return answer()
      await t.reopen()
      continue
    }
    let question: QuestionRecord | null = null
    for (const call of reply.calls) question = (await handleCall(deps, chat, as, t, call, question)) ?? question
    if (question) {
      // Steers that came during this call wait behind the question, and the answer says so.
      await t.close()
      const queued = await deps.store.queuedMessages(chat.id)
      return {
        ...answer(question),
        ...(queued.length > 0 ? { queued } : {}),
      }
    }
  }
  said.push(`_(stopped: ${MAX_STEPS} model calls in one turn)_`)
  return answer()
}

/**
 * What the model reads for an approved action whose result was never written: the control plane
 * stopped while it ran (no turn of this chat runs here meanwhile, so its question still `running` is
 * one left behind). Told only "interrupted", the model would propose it again, and an approver who
 * trusts it would run it twice.
 */
async function unrecordedResults(store: ChatStorePort, chatId: number): Promise<Map<string, string>> {
  const left = await store.runningQuestions(chatId)
  return new Map(
    left.map((q) => [
      q.toolCallId,
      `(no result recorded: ${q.answeredBy ?? "someone"} approved this at ${q.answeredAt ?? "an unknown time"} and the control plane stopped while it ran, so it may have run, in part or in full. Check what it did (the node's state, the audit log) before proposing it again, and tell the user so.)`,
    ]),
  )
}

/** Runs one tool call (a read), or turns it into the turn's question (an action); returns that question. */
async function handleCall(
  deps: LoopDeps,
  chat: ChatRecord,
  as: UserPrincipal,
  t: TurnControl,
  call: LlmToolCall,
  question: QuestionRecord | null,
): Promise<QuestionRecord | null> {
  const event = (status: ToolEvent["status"], args: Record<string, unknown>, result: unknown) =>
    t.emit({ event: "tool", data: { tool_call_id: call.id, tool_name: call.name, tool_args: args, status, result } })
  const reply = async (content: string, ok: boolean, args: Record<string, unknown>, result: unknown) => {
    await deps.store.appendMessages(chat.id, [
      { role: "tool", toolCallId: call.id, toolName: call.name, content, at: deps.clock.now().toISOString() },
    ])
    event(ok ? "succeeded" : "failed", args, result)
  }
  const tool = CHAT_TOOLS.get(call.name)
  if (!tool) {
    const msg = `unknown tool ${JSON.stringify(call.name)}; the tools are ${[...CHAT_TOOLS.keys()].join(", ")}`
    await reply(msg, false, call.args, msg)
    return null
  }
  // A NUL byte cannot be stored (PostgreSQL text) nor typed into a shell: such arguments are refused.
  if (JSON.stringify(call.args).includes("\\u0000")) {
    const msg = "invalid arguments: a NUL byte is not allowed"
    await reply(msg, false, {}, msg)
    return null
  }
  const parsed = call.malformed === undefined ? tool.input.safeParse(call.args) : null
  if (!parsed?.success) {
    const msg = parsed
      ? `invalid arguments: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`
      : "invalid arguments: expected a JSON object"
    await reply(msg, false, call.args, msg)
    return null
  }
  const args = parsed.data as Record<string, unknown>
  if (needsApproval(tool, args)) {
    if (question) {
      const msg = "Not run: one action at a time may wait for approval; propose it again once the first is answered."
      await reply(msg, false, args, msg)
      return null
    }
    // The question reaches its approver through the API's secret net: a value it hides (after
    // `A_TOKEN=`, a URL's password) would be approved unseen, and `A_TOKEN="$(curl … | sh)" uptime`
    // reads `A_TOKEN=[redacted] uptime`. Nobody can approve what they cannot see.
    if (hiddenFromApprover(args)) {
      const msg =
        "Not run: its approver would see it as [redacted] where it holds a secret-looking value (after a name such as TOKEN= or PASSWORD=, or a URL's password), so nobody could see what would run. Propose it without that value (a secret can come from a file on the node), or ask the user to run it with the chimera CLI."
      await reply(msg, false, args, msg)
      return null
    }
    const q = await ask(deps.store, deps.clock, deps.questionTtlSeconds, chat, call, tool, args)
    deps.asked(q)
    event("pending_approval", args, null)
    t.emit({ event: "question", data: toWire(q) })
    return q
  }
  event("started", args, null)
  const outcome = await runTool(deps.api, tool, args, as, { chatId: chat.id, model: chat.model }, t.signal)
  await reply(resultText(outcome), outcome.ok, args, outcome.result)
  return null
}
