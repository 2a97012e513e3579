// The AI chat routes (/api/v1/ai) as the CLI's two chat doors use them: `chimera chat` and the
// JSON-lines RPC mode. Every answer is parsed with the contract's own schemas (protocol/ai.ts), and a
// streamed turn arrives as typed events. Plain fetch rather than the typed client: a streamed turn is
// a text/event-stream body that the typed client cannot type, and one way for all the routes keeps
// the errors alike. A refusal becomes a ChatApiError carrying the API's code (AI_UNAVAILABLE,
// TIMEOUT, NO_TURN_RUNNING…), so each door can say what to do about it.
import type { z } from "zod"
import {
  AI_API_BASE,
  type AnswerRequest,
  ChatErrorBody,
  type ChatId,
  ChatState,
  type ChatStreamEvent,
  CompactResponse,
  type CreateChatRequest,
  CreateChatResponse,
  parseChatStreamEvent,
  type SendMessageRequest,
  SuccessResponse,
  type UpdateChatRequest,
} from "../../protocol/ai.ts"
import { terminalLine } from "../../protocol/terminal-text.ts"
import { CliError } from "./errors.ts"
import { readSse } from "./sse-reader.ts"

/** A refusal of the chat API (its code) or no answer at all (`UNREACHABLE`, `BAD_ANSWER`). */
export class ChatApiError extends CliError {
  constructor(
    message: string,
    code: string,
    readonly status: number,
  ) {
    super(message, code)
  }
}

export type ChatEvents = AsyncGenerator<ChatStreamEvent>

export interface ChatApi {
  readonly url: string
  create(body: CreateChatRequest): Promise<z.infer<typeof CreateChatResponse>>
  state(id: ChatId): Promise<ChatState>
  update(id: ChatId, body: UpdateChatRequest): Promise<ChatState>
  remove(id: ChatId): Promise<void>
  /** Sends a message; once the control plane has taken it, the events of the turn it starts. */
  send(id: ChatId, body: SendMessageRequest, signal?: AbortSignal): Promise<ChatEvents>
  /** Answers the pending question; once taken, the events of the turn it resumes. */
  answer(id: ChatId, body: AnswerRequest, signal?: AbortSignal): Promise<ChatEvents>
  cancel(id: ChatId): Promise<void>
  steer(id: ChatId, message: string): Promise<void>
  compact(id: ChatId): Promise<z.infer<typeof CompactResponse>>
}

export function createChatApi(url: string, token: string): ChatApi {
  const base = `${url}${AI_API_BASE}`
  const request = async (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> => {
    let res: Response
    try {
      res = await fetch(`${base}${path}`, {
        method,
        signal,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (error) {
      if (signal?.aborted) throw error
      throw new ChatApiError(
        `cannot reach the control plane at ${url} (${(error as Error).message}); is \`chimera web\` running?`,
        "UNREACHABLE",
        0,
      )
    }
    if (res.ok) return res
    const parsed = ChatErrorBody.safeParse(await res.json().catch(() => null))
    if (!parsed.success) throw new ChatApiError(`the control plane answered ${res.status}`, "BAD_ANSWER", res.status)
    throw new ChatApiError(terminalLine(parsed.data.error), terminalLine(parsed.data.code), res.status)
  }
  const json = async <S extends z.ZodType>(schema: S, res: Promise<Response>): Promise<z.infer<S>> => {
    const r = await res
    const parsed = schema.safeParse(await r.json().catch(() => null))
    if (!parsed.success)
      throw new ChatApiError(
        `the control plane's answer to ${r.url} is not what the chat API promises`,
        "BAD_ANSWER",
        0,
      )
    return parsed.data
  }
  const stream = async (path: string, body: unknown, signal?: AbortSignal): Promise<ChatEvents> => {
    const res = await request("POST", path, body, signal)
    if (!res.body) throw new ChatApiError("the control plane sent an empty stream", "BAD_ANSWER", res.status)
    return events(res.body, signal)
  }
  async function* events(body: ReadableStream<Uint8Array>, signal?: AbortSignal): ChatEvents {
    try {
      for await (const record of readSse(body)) {
        let event: ChatStreamEvent | null
        try {
          event = parseChatStreamEvent(record.event, record.data)
        } catch {
          throw new ChatApiError(`the stream's ${terminalLine(record.event)} event is malformed`, "BAD_ANSWER", 0)
        }
        // An event this version does not know is skipped: a newer server may add some.
        if (event) yield event
      }
    } catch (error) {
      if (error instanceof ChatApiError || signal?.aborted) throw error
      throw new ChatApiError(`the stream from ${url} broke off (${(error as Error).message})`, "UNREACHABLE", 0)
    }
  }
  const ok = async (res: Promise<Response>) => void (await json(SuccessResponse, res))
  return {
    url,
    create: (body) => json(CreateChatResponse, request("POST", "/chat", body)),
    state: (id) => json(ChatState, request("GET", `/chat/${id}`)),
    update: (id, body) => json(ChatState, request("PATCH", `/chat/${id}`, body)),
    remove: (id) => ok(request("DELETE", `/chat/${id}`)),
    send: (id, body, signal) => stream(`/chat/${id}/message/stream`, body, signal),
    answer: (id, body, signal) => stream(`/chat/${id}/answer/stream`, body, signal),
    cancel: (id) => ok(request("POST", `/chat/${id}/cancel`)),
    steer: (id, message) => ok(request("POST", `/chat/${id}/steer`, { message })),
    compact: (id) => json(CompactResponse, request("POST", `/chat/${id}/compact`)),
  }
}

/** The one line `chimera chat` and the RPC mode say when the control plane has no model configured. */
export const AI_UNAVAILABLE_HINT =
  "the control plane has no AI provider configured: add an [ai] section to its configuration " +
  '(CHIMERA_CONFIG_FILE), e.g. provider = "anthropic", model = "claude-sonnet-4-5", api_key_file = "/path/to/key" ' +
  '(or provider = "openai" with base_url for Ollama, vLLM or llama.cpp), then restart `chimera web`'
