// The AI chat's wire contract, shared by the control plane and its clients (`chimera chat`, the
// JSON-lines RPC mode). Every route lives under /api/v1/ai and needs a bearer token:
//
//   GET    /chat                        -> ChatList (the caller's own chats)
//   POST   /chat                        CreateChatRequest   -> CreateChatResponse (201)
//   GET    /chat/:id                    -> ChatState
//   PATCH  /chat/:id                    UpdateChatRequest   -> ChatState (switch model or context)
//   DELETE /chat/:id                    -> SuccessResponse
//   POST   /chat/:id/message            SendMessageRequest  -> MessageResponse
//   POST   /chat/:id/message/stream     SendMessageRequest  -> text/event-stream of ChatStreamEvent
//   GET    /chat/:id/question           -> QuestionResponse
//   POST   /chat/:id/answer             AnswerRequest       -> AnswerResponse
//   POST   /chat/:id/answer/stream      AnswerRequest       -> text/event-stream of the turn it resumes
//   POST   /chat/:id/compact            -> CompactResponse
//   POST   /chat/:id/cancel             CancelRequest?      -> SuccessResponse (the running turn, or the one
//                                                              named, ends saying it was cancelled)
//   POST   /chat/:id/steer              SteerRequest        -> SteerResponse (before the next model call, or
//                                                              right after the waiting question's result)
//
// A turn runs until the model answers or proposes an action that changes something. Such an action is
// a pending question: the message answer (or the stream's `question` then `done` events) carries it,
// and the turn waits. An answer resumes it: approved, the action runs under the approver's identity
// and the model reads its result; rejected or expired, the model reads that. Errors are
// `{"error": message, "code": ChatErrorCode}` with the status in CHAT_ERROR_STATUS.
import { z } from "zod"
import { NodeId } from "./ids.ts"

export const AI_API_BASE = "/api/v1/ai"

export const ChatId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER)
export type ChatId = z.infer<typeof ChatId>

export const QuestionId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER)
export type QuestionId = z.infer<typeof QuestionId>

/**
 * What a chat may be about: an incident (GET /api/incidents: its UUID) or a fleet event (GET
 * /api/events: its number).
 */
export const IncidentId = z.union([z.number().int().positive().max(Number.MAX_SAFE_INTEGER), z.uuid()])
export type IncidentId = z.infer<typeof IncidentId>

/** A node may be named as `nodeId` or, as the original NetXMS clients say, `objectId`; a number is read as its text. */
export const ObjectRef = z.union([NodeId, z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)])
export type ObjectRef = z.infer<typeof ObjectRef>

/** A context change: each field absent = unchanged, null = unbound. */
export const ChatContextInput = z
  .object({
    nodeId: ObjectRef.nullable().optional(),
    objectId: ObjectRef.nullable().optional(),
    incidentId: IncidentId.nullable().optional(),
  })
  .strict()
export type ChatContextInput = z.infer<typeof ChatContextInput>

/** What a chat is bound to, as the server holds it. */
export const ChatContext = z.object({ nodeId: NodeId.nullable(), incidentId: IncidentId.nullable() }).strict()
export type ChatContext = z.infer<typeof ChatContext>

export const ModelName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, "expected a model name such as claude-sonnet-4-5 or gpt-4o")
export type ModelName = z.infer<typeof ModelName>

export const CreateChatRequest = ChatContextInput.extend({ model: ModelName.optional() }).strict()
export type CreateChatRequest = z.infer<typeof CreateChatRequest>

export const CreateChatResponse = z.object({ chatId: ChatId, created: z.iso.datetime() })
export type CreateChatResponse = z.infer<typeof CreateChatResponse>

export const SendMessageRequest = z
  .object({ message: z.string().min(1).max(32_768), context: ChatContextInput.optional() })
  .strict()
export type SendMessageRequest = z.infer<typeof SendMessageRequest>

export const QuestionType = z.enum(["confirmation", "multipleChoice"])
export const ConfirmationType = z.enum(["approve_reject", "yes_no", "confirm_cancel"])

export const Question = z.object({
  id: QuestionId,
  type: QuestionType,
  /** Set for confirmations, null for multiple choice. */
  confirmationType: ConfirmationType.nullable(),
  text: z.string(),
  /** What would happen: the exact command and its nodes, or the targets and closure. */
  context: z.string(),
  options: z.array(z.string()),
  expiresAt: z.iso.datetime(),
})
export type Question = z.infer<typeof Question>

/** A steering message not yet in the conversation. */
export const QueuedMessage = z.object({ content: z.string(), at: z.iso.datetime() })
export type QueuedMessage = z.infer<typeof QueuedMessage>

export const MessageResponse = z.object({
  response: z.string(),
  pendingQuestion: Question.nullable(),
  /**
   * Steering messages that arrived too late for this turn's model calls and wait behind its pending
   * question: the model reads them right after that question's result (approved or rejected); if the
   * question expires or is withdrawn, they join the conversation after it. Absent when there are none.
   */
  queued: z.array(QueuedMessage).optional(),
  /** True when the turn ended because someone cancelled it (POST /chat/{id}/cancel), not by itself. */
  cancelled: z.boolean().optional(),
})
export type MessageResponse = z.infer<typeof MessageResponse>

export const QuestionResponse = z.object({ question: Question.nullable() })
export type QuestionResponse = z.infer<typeof QuestionResponse>

export const AnswerRequest = z
  .object({
    questionId: QuestionId,
    positive: z.boolean(),
    /** For multipleChoice: the 0-based option; -1 for confirmations. */
    selectedOption: z.number().int().min(-1).max(1000).default(-1),
    /** Wait for the resumed turn to end or ask again, and answer its outcome too. */
    wait: z.boolean().default(false),
  })
  .strict()
export type AnswerRequest = z.input<typeof AnswerRequest>

/** `response` and `pendingQuestion` are there only when the request asked to `wait`. */
export const AnswerResponse = z.object({
  success: z.literal(true),
  response: z.string().optional(),
  pendingQuestion: Question.nullable().optional(),
})
export type AnswerResponse = z.infer<typeof AnswerResponse>

export const SuccessResponse = z.object({ success: z.literal(true) })
export type SuccessResponse = z.infer<typeof SuccessResponse>

export const UpdateChatRequest = ChatContextInput.extend({ model: ModelName.optional() }).strict()
export type UpdateChatRequest = z.infer<typeof UpdateChatRequest>

/**
 * Which turn to cancel (its `turn` event's id); without it, whichever runs, or the question waiting.
 * A turn's id is a UUID the control plane made; anything else names no turn, and some text (a NUL)
 * PostgreSQL would not even compare.
 */
export const CancelRequest = z
  .object({
    turnId: z
      .uuid({ error: "expected a turn id as the stream's `turn` event or GET /chat/:id's turnId gives it" })
      .optional(),
  })
  .strict()
export type CancelRequest = z.infer<typeof CancelRequest>

export const SteerRequest = z.object({ message: z.string().min(1).max(32_768) }).strict()
export type SteerRequest = z.infer<typeof SteerRequest>

/**
 * Where a steering message waits: `turn`, for the running turn's next model call (if the turn then
 * ends with a question, its `done` lists the message under `queued`); `question`, behind the pending
 * question `questionId`, for the model to read right after its result. Either way it is stored with the
 * chat; a turn that ends otherwise (cancelled, failed) leaves it in the conversation as the next user
 * message.
 */
export const SteerResponse = z.object({
  success: z.literal(true),
  // Defaults: what a control plane from before this field meant by its bare `{success: true}`.
  queuedBehind: z.enum(["turn", "question"]).default("turn"),
  questionId: QuestionId.nullable().default(null),
})
export type SteerResponse = z.output<typeof SteerResponse>

export const ToolCall = z.object({ id: z.string(), name: z.string(), args: z.record(z.string(), z.unknown()) })
export type ToolCall = z.infer<typeof ToolCall>

/** `summary` holds what compaction kept of the older turns it replaced. */
export const ChatRole = z.enum(["user", "assistant", "tool", "summary"])
export type ChatRole = z.infer<typeof ChatRole>

export const ChatMessage = z.object({
  role: ChatRole,
  content: z.string(),
  at: z.iso.datetime(),
  /** assistant: the tools it called. */
  toolCalls: z.array(ToolCall).optional(),
  /** tool: which call this is the result of. */
  toolCallId: z.string().optional(),
  toolName: z.string().optional(),
})
export type ChatMessage = z.infer<typeof ChatMessage>

export const ChatSummary = z.object({
  chatId: ChatId,
  created: z.iso.datetime(),
  model: z.string(),
  context: ChatContext,
})
export type ChatSummary = z.infer<typeof ChatSummary>

export const ChatList = z.object({ chats: z.array(ChatSummary) })
export type ChatList = z.infer<typeof ChatList>

export const ChatState = ChatSummary.extend({
  provider: z.enum(["anthropic", "openai"]),
  messages: z.array(ChatMessage),
  pendingQuestion: Question.nullable(),
  /** Steering messages stored but not yet in `messages` (waiting for a model call or a question's answer). */
  queuedMessages: z.array(QueuedMessage).default([]),
  turnRunning: z.boolean(),
  /** The running turn's id (its `turn` event's), on whichever replica: what a cancel names. */
  turnId: z.string().nullable().default(null),
  /** The conversation's estimated size in tokens, and where compaction starts. */
  estimatedTokens: z.number().int().nonnegative(),
  maxContextTokens: z.number().int().positive(),
})
export type ChatState = z.infer<typeof ChatState>

export const CompactResponse = z.object({
  success: z.literal(true),
  /** How many messages were replaced by one summary (0: too short to compact). */
  summarisedMessages: z.number().int().nonnegative(),
  summary: z.string(),
  tokensBefore: z.number().int().nonnegative(),
  tokensAfter: z.number().int().nonnegative(),
})
export type CompactResponse = z.infer<typeof CompactResponse>

// Server-sent events of a streamed turn: `event: <name>` then `data: <JSON>`.
export const ToolStatus = z.enum(["started", "succeeded", "failed", "pending_approval", "rejected", "expired"])
export type ToolStatus = z.infer<typeof ToolStatus>

export const TokenEvent = z.object({ text: z.string() })
export type TokenEvent = z.infer<typeof TokenEvent>
export const ToolEvent = z.object({
  tool_call_id: z.string(),
  tool_name: z.string(),
  tool_args: z.record(z.string(), z.unknown()),
  status: ToolStatus,
  /** The tool's output (succeeded), the reason (failed, rejected, expired), or null while it runs. */
  result: z.unknown(),
})
export type ToolEvent = z.infer<typeof ToolEvent>
export const StreamErrorEvent = z.object({ code: z.string(), message: z.string() })
/** A stream's first event: the turn it carries, which `POST /chat/:id/cancel` may name. */
export const TurnEvent = z.object({ turnId: z.string() })
export type TurnEvent = z.infer<typeof TurnEvent>
export type StreamErrorEvent = z.infer<typeof StreamErrorEvent>

/** Each event name and its data; `turn` is the first, `done` (same body as POST /message) or `error` the last. */
export const CHAT_STREAM_EVENTS = {
  turn: TurnEvent,
  token: TokenEvent,
  tool: ToolEvent,
  question: Question,
  done: MessageResponse,
  error: StreamErrorEvent,
} as const
export type ChatStreamEventName = keyof typeof CHAT_STREAM_EVENTS

export type ChatStreamEvent =
  | { event: "turn"; data: TurnEvent }
  | { event: "token"; data: TokenEvent }
  | { event: "tool"; data: ToolEvent }
  | { event: "question"; data: Question }
  | { event: "done"; data: MessageResponse }
  | { event: "error"; data: StreamErrorEvent }

/** Whether `e` ends its stream: `done` or `error` is always the last event. */
export const isLastEvent = (e: ChatStreamEvent) => e.event === "done" || e.event === "error"

/** One SSE event checked against the contract; null for an event name this version does not know. */
export function parseChatStreamEvent(event: string, data: string): ChatStreamEvent | null {
  if (!Object.hasOwn(CHAT_STREAM_EVENTS, event)) return null
  const name = event as ChatStreamEventName
  return { event: name, data: CHAT_STREAM_EVENTS[name].parse(JSON.parse(data)) } as ChatStreamEvent
}

export const ChatErrorCode = z.enum([
  "AUTH_FAILED",
  "CHAT_NOT_FOUND",
  "ACCESS_DENIED",
  "QUESTION_INVALID",
  "AI_UNAVAILABLE",
  "TIMEOUT",
  /** cancel or steer with no turn running (and, for steer, no question waiting). */
  "NO_TURN_RUNNING",
  /** a message, compaction or model switch while a turn runs. */
  "TURN_RUNNING",
  /** a cancel naming a turn that has ended (nothing was cancelled). */
  "TURN_ENDED",
  "VALIDATION_FAILED",
  "INVALID_JSON",
  "UNSUPPORTED_MEDIA_TYPE",
  "PAYLOAD_TOO_LARGE",
  "RATE_LIMIT_EXCEEDED",
  /** the user keeps as many chats as one may: delete some. */
  "RESOURCE_EXHAUSTED",
])
export type ChatErrorCode = z.infer<typeof ChatErrorCode>

export const CHAT_ERROR_STATUS: Record<ChatErrorCode, number> = {
  AUTH_FAILED: 401,
  CHAT_NOT_FOUND: 404,
  ACCESS_DENIED: 403,
  QUESTION_INVALID: 409,
  AI_UNAVAILABLE: 503,
  TIMEOUT: 504,
  NO_TURN_RUNNING: 409,
  TURN_RUNNING: 409,
  TURN_ENDED: 409,
  VALIDATION_FAILED: 422,
  INVALID_JSON: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMIT_EXCEEDED: 429,
  RESOURCE_EXHAUSTED: 429,
}

export const ChatErrorBody = z.object({ error: z.string(), code: z.string(), detail: z.unknown().optional() })
export type ChatErrorBody = z.infer<typeof ChatErrorBody>
