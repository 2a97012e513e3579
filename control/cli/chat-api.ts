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
  SteerResponse,
  SuccessResponse,
  type UpdateChatRequest,
} from "../../protocol/ai.ts"
import { terminalLine } from "../../protocol/terminal-text.ts"
import { CliError, unreachable } from "./errors.ts"
import { readSse } from "./sse-reader.ts"

/** A refusal of the chat API (its code), or none: `UNREACHABLE`, `NO_ANSWER` (silent too long), `BAD_ANSWER`. */
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
  /** Cancels the running turn (only turn `turnId`, when given: TURN_ENDED if it has ended), or the question waiting. */
  cancel(id: ChatId, turnId?: string): Promise<void>
  /** Where the message waits: for the running turn's next model call, or behind the pending question. */
  steer(id: ChatId, message: string): Promise<SteerResponse>
  compact(id: ChatId): Promise<z.infer<typeof CompactResponse>>
}

export interface ChatApiLimits {
  requestMs: number
  compactMs: number
  streamIdleMs: number
}

/** `token` may change while the API is in use (a new login after a session expired). */
export function createChatApi(url: string, token: string | (() => string), limits: ChatApiLimits = LIMITS): ChatApi {
  const bearer = typeof token === "string" ? () => token : token
  const base = `${url}${AI_API_BASE}`
  const request = async (
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    timeoutMs?: number,
  ): Promise<Response> => {
    let res: Response
    const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs)
    try {
      res = await fetch(`${base}${path}`, {
        method,
        signal: signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout),
        headers: {
          authorization: `Bearer ${bearer()}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (error) {
      if (signal?.aborted) throw error
      if (timeout?.aborted)
        throw new ChatApiError(`the control plane at ${url} did not answer within ${timeoutMs} ms`, "NO_ANSWER", 0)
      throw new ChatApiError(unreachable(url, error).message, "UNREACHABLE", 0)
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
      for await (const record of readSse(_idleLimited(body, limits.streamIdleMs))) {
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
  const call = (method: string, path: string, body?: unknown, timeoutMs = limits.requestMs) =>
    request(method, path, body, undefined, timeoutMs)
  return {
    url,
    create: (body) => json(CreateChatResponse, call("POST", "/chat", body)),
    state: (id) => json(ChatState, call("GET", `/chat/${id}`)),
    update: (id, body) => json(ChatState, call("PATCH", `/chat/${id}`, body)),
    remove: (id) => ok(call("DELETE", `/chat/${id}`)),
    send: (id, body, signal) => stream(`/chat/${id}/message/stream`, body, signal),
    answer: (id, body, signal) => stream(`/chat/${id}/answer/stream`, body, signal),
    cancel: (id, turnId) => ok(call("POST", `/chat/${id}/cancel`, turnId === undefined ? undefined : { turnId })),
    steer: (id, message) => json(SteerResponse, call("POST", `/chat/${id}/steer`, { message })),
    compact: (id) => json(CompactResponse, call("POST", `/chat/${id}/compact`, undefined, limits.compactMs)),
  }
}

// How long the CLI waits. A plain request answers at once; compaction is a model call (bounded by the
// control plane's [ai] timeout_seconds, 120 s by default). A streamed turn may run long (a deploy
// approved mid-turn), but the control plane sends a keep-alive every 15 s: a minute of silence means
// the connection is gone. The start of a stream is not bounded: an approved action runs before it,
// and Ctrl+C (or cancel) is there for the person who does not want to wait.
const LIMITS: ChatApiLimits = { requestMs: 30_000, compactMs: 300_000, streamIdleMs: 60_000 }

/** The body's chunks, failing with TIMEOUT when none arrives for `ms`; the connection is closed then. */
async function* _idleLimited(body: ReadableStream<Uint8Array>, ms: number): AsyncGenerator<Uint8Array> {
  const reader = body.getReader()
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined
      const silence = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new ChatApiError(`the control plane sent nothing for ${ms / 1000} s`, "NO_ANSWER", 0)),
          ms,
        )
      })
      const next = await Promise.race([reader.read(), silence]).finally(() => clearTimeout(timer))
      if (next.done) return
      yield next.value
    }
  } finally {
    reader.cancel().catch(() => {})
  }
}

/**
 * What to say of an AI_UNAVAILABLE answer. The code covers two cases: no [ai] at all (then the
 * sentence below, on how to configure one) and a configured provider that failed or could not be
 * reached (then the control plane's own words, which name the provider and what went wrong: telling
 * that person to "add an [ai] section" they already have would send them the wrong way).
 */
export const describeUnavailable = (message: string) =>
  message.startsWith("no AI provider is configured") ? AI_UNAVAILABLE_HINT : message

/** The one line `chimera chat` and the RPC mode say when the control plane has no model configured. */
export const AI_UNAVAILABLE_HINT =
  "the control plane has no AI provider configured: add an [ai] section to its configuration " +
  '(CHIMERA_CONFIG_FILE), e.g. provider = "anthropic", model = "claude-sonnet-4-5", api_key_file = "/path/to/key" ' +
  '(or provider = "openai" with base_url for Ollama, vLLM or llama.cpp), then restart `chimera web`'
