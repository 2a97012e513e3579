// Answering a pending question. Yes runs the action as the user who said it, provided their role
// allows it (the catalogue's permission and the command's risk, as the API itself checks): otherwise
// a 403 and the question stays pending for someone who may. The action runs through the API, so it
// has exactly one audit row, whose actor is the approver and whose detail names the chat and model
// (X-Chimera-Via: chat); cancelling the turn meanwhile cancels a relayed command it runs. No settles it
// as rejected. Either way the model reads the outcome as the
// tool's result when the turn resumes.
import type { ChatStreamEvent } from "../../protocol/ai.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { Clock, UserPrincipal } from "../domain/ports.ts"
import type { ChatRecord, ChatStorePort, QuestionRecord } from "./chat-records.ts"
import type { InternalApi } from "./internal-api.ts"
import { settleUnrun } from "./questions.ts"
import { resultText, runTool } from "./tool-run.ts"
import { CHAT_TOOLS, mayApprove } from "./tools.ts"

const gone = (q: QuestionRecord) =>
  new ChimeraError("QUESTION_INVALID", `question ${q.id} was answered by someone else or expired meanwhile`)

export async function answerQuestion(
  deps: { store: ChatStorePort; api: InternalApi; clock: Clock },
  chat: ChatRecord,
  q: QuestionRecord,
  who: UserPrincipal,
  positive: boolean,
  /** The turn's: a cancel of the turn while the action runs cancels what it started (a relayed run). */
  signal?: AbortSignal,
): Promise<ChatStreamEvent[]> {
  const { store, clock } = deps
  const base = { tool_call_id: q.toolCallId, tool_name: q.toolName, tool_args: q.toolArgs }
  if (!positive) {
    if (!(await settleUnrun(store, q, "rejected", who.name, clock.now()))) throw gone(q)
    return [{ event: "tool", data: { ...base, status: "rejected", result: `rejected by ${who.name}` } }]
  }
  const tool = CHAT_TOOLS.get(q.toolName)
  if (!tool) throw new ChimeraError("QUESTION_INVALID", `question ${q.id} names a tool this version does not have`)
  try {
    mayApprove(who.role, tool, q.toolArgs)
  } catch (error) {
    if (error instanceof ChimeraError && error.code === "PERMISSION_DENIED")
      throw new ChimeraError("ACCESS_DENIED", `${who.name} may not approve this: ${error.message}`)
    throw error
  }
  if (!(await store.moveQuestion(q.id, "pending", "running", who.name, clock.now().toISOString()))) throw gone(q)
  const outcome = await runTool(deps.api, tool, q.toolArgs, who, { chatId: chat.id, model: q.model }, signal).catch(
    async (error: unknown) => {
      await store.moveQuestion(q.id, "running", "pending", null, clock.now().toISOString())
      throw error
    },
  )
  // A check only the handler makes (a build on the control plane's host needs admin) refused it: the
  // question waits on, for someone whose role allows it.
  if (outcome.status === 401 || outcome.status === 403) {
    await store.moveQuestion(q.id, "running", "pending", null, clock.now().toISOString())
    const said = (outcome.result as { error?: unknown } | null)?.error
    throw new ChimeraError(
      "ACCESS_DENIED",
      `${who.name} may not approve this: ${typeof said === "string" ? said : `the API answered ${outcome.status}`}`,
    )
  }
  const at = clock.now().toISOString()
  await store.settleQuestion(q, "running", "approved", who.name, at, {
    role: "tool",
    toolCallId: q.toolCallId,
    toolName: q.toolName,
    content: `Approved by ${who.name} and run. Result: ${resultText(outcome)}`,
    at,
  })
  return [
    { event: "tool", data: { ...base, status: "started", result: null } },
    { event: "tool", data: { ...base, status: outcome.ok ? "succeeded" : "failed", result: outcome.result } },
  ]
}
