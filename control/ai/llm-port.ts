// The one thing the agent loop asks of a language model: stream one reply to a conversation with
// tools, as text deltas, complete tool calls and token usage. Each provider's adapter
// (control/adapters/llm/) speaks its wire format through its official SDK; the loop never sees one.
// Failures are LlmErrors of two kinds the chat API answers differently: the provider was too slow
// (timeout, 504) or could not be used at all (unavailable, 503).

export interface LlmTool {
  name: string
  description: string
  /** A JSON Schema object for the tool's arguments. */
  parameters: Record<string, unknown>
}

export interface LlmToolCall {
  id: string
  name: string
  args: Record<string, unknown>
  /** The arguments as the model sent them, when they were not a JSON object. */
  malformed?: string
}

export type LlmMessage =
  | { role: "user"; content: string }
  | { role: "assistant"; content: string; toolCalls: LlmToolCall[] }
  | { role: "tool"; toolCallId: string; toolName: string; content: string }

export interface LlmRequest {
  model: string
  system: string
  messages: LlmMessage[]
  tools: LlmTool[]
  maxTokens: number
  signal: AbortSignal
}

export type LlmEvent =
  | { type: "text"; text: string }
  | { type: "tool_call"; call: LlmToolCall }
  | { type: "usage"; inputTokens: number; outputTokens: number }

export interface LlmPort {
  readonly provider: "anthropic" | "openai"
  stream(request: LlmRequest): AsyncIterable<LlmEvent>
}

export class LlmError extends Error {
  override readonly name = "LlmError"
  constructor(
    readonly kind: "timeout" | "unavailable" | "aborted",
    message: string,
  ) {
    super(message)
  }
}

/** Arguments text as an object, or the text kept for the tool result that says it was not one. */
export function parseToolArgs(id: string, name: string, text: string): LlmToolCall {
  if (text.trim() === "") return { id, name, args: {} }
  try {
    const value: unknown = JSON.parse(text)
    if (value !== null && typeof value === "object" && !Array.isArray(value))
      return { id, name, args: value as Record<string, unknown> }
  } catch {}
  return { id, name, args: {}, malformed: text.slice(0, 2000) }
}
