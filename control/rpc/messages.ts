// The JSON-lines RPC's messages: what an editor, a GUI or a script writes to `chimera code --mode rpc`
// on stdin (commands), and what comes back on stdout (responses and events), one JSON object a line.
//
// Commands carry `type` and an optional `id` (a string or number) that their response echoes:
//   prompt {message}      a user message; the turn it starts streams back as events
//   steer {message}       a message for the running turn, read before its next model call (or, if
//                         a question waits, right after its result)
//   cancel                end the running turn
//   get_state             the conversation and the model (a `state` event)
//   compact               summarise the older turns now
//   set_model {model}     switch the model (not while a turn runs)
//   answer {positive, question_id?, selected_option?}   answer the assistant's pending question
// Every command is answered by exactly one `response` {command, id, success, error} ("" when it
// succeeded), after the events it caused: a prompt's or an answer's response comes when its turn
// has ended. Events: `message` {role, content, done} (deltas with done false, then the whole text
// with done true), `tool_execution` {tool_name, tool_args, status, result}, `question` (an action
// waiting for approval), `queued` {question_id, messages} (steers that wait behind that question, said
// as its turn ends), `state`, and `error` {message} for what no command caused.
import { z } from "zod"
import { ModelName, type Question, type QueuedMessage, type ToolEvent } from "../../protocol/ai.ts"

export const RpcId = z.union([z.string().max(256), z.number().finite()], {
  error: "expected a string of at most 256 characters, or a number",
})
export type RpcId = z.infer<typeof RpcId>

const Message = z.string().min(1, "expected a non-empty string").max(32_768, "expected at most 32768 characters")
const base = { id: RpcId.optional() }

export const RpcCommand = z.discriminatedUnion("type", [
  z.object({ type: z.literal("prompt"), ...base, message: Message }).strict(),
  z.object({ type: z.literal("steer"), ...base, message: Message }).strict(),
  z.object({ type: z.literal("cancel"), ...base }).strict(),
  z.object({ type: z.literal("get_state"), ...base }).strict(),
  z.object({ type: z.literal("compact"), ...base }).strict(),
  z.object({ type: z.literal("set_model"), ...base, model: ModelName }).strict(),
  z
    .object({
      type: z.literal("answer"),
      ...base,
      /** Default: the question last asked. */
      question_id: z.number().int().positive().optional(),
      positive: z.boolean(),
      /** For a multiple-choice question: the 0-based option. */
      selected_option: z.number().int().min(-1).max(1000).optional(),
    })
    .strict(),
])
export type RpcCommand = z.infer<typeof RpcCommand>
export type RpcCommandType = RpcCommand["type"]
export const COMMAND_TYPES = RpcCommand.options.map((o) => o.shape.type.value)

export interface RpcResponse {
  type: "response"
  command: string
  id: RpcId | null
  success: boolean
  error: string
  /** What compaction did (compact); where a steer waits (steer: queued_behind, question_id). */
  data?: Record<string, unknown>
}

export type RpcEvent =
  | RpcResponse
  | { type: "message"; role: "assistant"; content: string; done: boolean }
  | {
      type: "tool_execution"
      tool_call_id: string
      tool_name: string
      tool_args: ToolEvent["tool_args"]
      status: ToolEvent["status"]
      result: unknown
    }
  | {
      type: "question"
      question_id: number
      question_type: Question["type"]
      confirmation_type: Question["confirmationType"]
      text: string
      context: string
      options: string[]
      expires_at: string
    }
  | {
      type: "state"
      id: RpcId | null
      chat_id: number
      model: string
      provider: string
      messages: unknown[]
      context: { node_id: string | null; incident_id: number | string | null }
      pending_question: number | null
      queued_messages: QueuedMessage[]
      turn_running: boolean
      estimated_tokens: number
      max_context_tokens: number
    }
  | { type: "queued"; question_id: number; messages: QueuedMessage[] }
  | { type: "error"; message: string; code?: string }

export const questionEvent = (q: Question): RpcEvent => ({
  type: "question",
  question_id: q.id,
  question_type: q.type,
  confirmation_type: q.confirmationType,
  text: q.text,
  context: q.context,
  options: q.options,
  expires_at: q.expiresAt,
})
