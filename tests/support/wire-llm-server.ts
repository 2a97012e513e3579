// A model server on 127.0.0.1 that answers with exact bytes, as the real APIs send them and as the
// network delivers them: where llm-server.ts writes tidy SSE events one per chunk, this one sends what
// a test builds (the documented event shapes of Anthropic's Messages API or OpenAI's Chat Completions,
// or a provider's error body) cut into pieces at awkward places: inside a UTF-8 character, inside a
// `data:` line, with CRLF line ends. It records each request and whether the client went away before
// the answer was finished (a cancel that does not reach the provider leaves that request running).
import { randomUUID } from "node:crypto"
import type { Provider } from "./llm-server.ts"

export interface WireReply {
  status?: number
  headers?: Record<string, string>
  /** The body, sent piece by piece (each a separate write). */
  pieces: (string | Uint8Array)[]
  /** After the pieces, keep the response open until the client goes away. */
  holdOpen?: boolean
  /** Send the first `after` pieces (default none), then wait for `until` before the rest (a test acts mid-answer). */
  gate?: { after?: number; until: Promise<void> }
}

export interface WireRequest {
  path: string
  headers: Record<string, string>
  body: Record<string, unknown>
  /** Set when the client closed the request before its answer was complete. */
  abandoned: boolean
  /** Set when the answer was complete (every piece written, the stream closed). */
  finished: boolean
}

export interface WireLlmServer extends AsyncDisposable {
  provider: Provider
  baseUrl: string
  apiKey: string
  requests: WireRequest[]
  script(...replies: (WireReply | ((r: WireRequest) => WireReply))[]): void
  stop(): Promise<void>
}

const enc = new TextEncoder()

/** Cuts bytes into pieces of 1..`most` bytes, so that cuts fall inside characters and lines. */
export function shred(text: string | Uint8Array, most = 7): Uint8Array[] {
  const bytes = typeof text === "string" ? enc.encode(text) : text
  const out: Uint8Array[] = []
  let size = 1
  for (let i = 0; i < bytes.length; ) {
    out.push(bytes.slice(i, i + size))
    i += size
    size = (size % most) + 1
  }
  return out
}

/** One SSE event as the APIs write it, optionally with CRLF line ends. */
export function sseEvent(event: string | null, data: unknown, crlf = false): string {
  const nl = crlf ? "\r\n" : "\n"
  const json = typeof data === "string" ? data : JSON.stringify(data)
  return `${event ? `event: ${event}${nl}` : ""}data: ${json}${nl}${nl}`
}

/** Anthropic's documented stream for text blocks and tool_use blocks, events in order. */
export function anthropicEvents(opts: {
  model?: string
  blocks: ({ text: string[] } | { toolUse: { id: string; name: string; json: string[] } })[]
  stopReason?: string
  input?: number
  output?: number
  /** Events put in after the n-th event (ping, error…). */
  insert?: { after: number; event: string; data: unknown }[]
  /** Leave out message_delta and message_stop (a stream cut short). */
  cutAfter?: number
}): [string, unknown][] {
  const events: [string, unknown][] = [
    [
      "message_start",
      {
        type: "message_start",
        message: {
          id: `msg_${randomUUID().replaceAll("-", "")}`,
          type: "message",
          role: "assistant",
          content: [],
          model: opts.model ?? "claude-test-1",
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: opts.input ?? 25, output_tokens: 1 },
        },
      },
    ],
    ["ping", { type: "ping" }],
  ]
  opts.blocks.forEach((b, index) => {
    if ("text" in b) {
      events.push([
        "content_block_start",
        { type: "content_block_start", index, content_block: { type: "text", text: "" } },
      ])
      for (const text of b.text)
        events.push([
          "content_block_delta",
          { type: "content_block_delta", index, delta: { type: "text_delta", text } },
        ])
    } else {
      events.push([
        "content_block_start",
        {
          type: "content_block_start",
          index,
          content_block: { type: "tool_use", id: b.toolUse.id, name: b.toolUse.name, input: {} },
        },
      ])
      for (const partial_json of b.toolUse.json)
        events.push([
          "content_block_delta",
          { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } },
        ])
    }
    events.push(["content_block_stop", { type: "content_block_stop", index }])
  })
  events.push(
    [
      "message_delta",
      {
        type: "message_delta",
        delta: { stop_reason: opts.stopReason ?? "end_turn", stop_sequence: null },
        usage: { output_tokens: opts.output ?? 15 },
      },
    ],
    ["message_stop", { type: "message_stop" }],
  )
  for (const i of [...(opts.insert ?? [])].sort((a, b) => b.after - a.after))
    events.splice(i.after, 0, [i.event, i.data])
  return opts.cutAfter === undefined ? events : events.slice(0, opts.cutAfter)
}

/** OpenAI's documented chunks: role, content deltas, tool_calls deltas by index, finish, usage, [DONE]. */
export function openAiChunks(opts: {
  model?: string
  text?: string[]
  /** Each call's pieces: the first carries id and name, the rest only argument pieces. */
  toolCalls?: { id: string; name: string; json: string[] }[]
  finish?: string
  usage?: { prompt_tokens: number; completion_tokens: number } | null
  /** How the usage chunk's choices are sent: [] as OpenAI does, null or left out as some servers do. */
  usageChoices?: "empty" | "null" | "absent"
  /** Every tool_calls delta repeats the call's id and name (as some compatible servers do). */
  repeatNames?: boolean
}): unknown[] {
  const id = `chatcmpl-${randomUUID().replaceAll("-", "")}`
  const base = { id, object: "chat.completion.chunk", created: 1_700_000_000, model: opts.model ?? "gpt-test-1" }
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    usage: null,
  })
  const out: unknown[] = [chunk({ role: "assistant", content: "", refusal: null })]
  for (const content of opts.text ?? []) out.push(chunk({ content }))
  for (const [index, call] of (opts.toolCalls ?? []).entries()) {
    out.push(
      chunk({
        tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }],
      }),
    )
    for (const args of call.json)
      out.push(
        chunk({
          tool_calls: [
            opts.repeatNames
              ? { index, id: call.id, type: "function", function: { name: call.name, arguments: args } }
              : { index, function: { arguments: args } },
          ],
        }),
      )
  }
  out.push(chunk({}, opts.finish ?? (opts.toolCalls?.length ? "tool_calls" : "stop")))
  if (opts.usage !== null) {
    const usage = opts.usage ?? { prompt_tokens: 25, completion_tokens: 15 }
    const last: Record<string, unknown> = {
      ...base,
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    }
    if (opts.usageChoices !== "absent") last.choices = opts.usageChoices === "null" ? null : []
    out.push(last)
  }
  return out
}

/** Anthropic events as one SSE text. */
export const anthropicSse = (events: [string, unknown][], crlf = false) =>
  events.map(([e, d]) => sseEvent(e, d, crlf)).join("")

/** OpenAI chunks as one SSE text, ending with [DONE] unless told not to. */
export const openAiSse = (chunks: unknown[], opts: { crlf?: boolean; done?: boolean } = {}) =>
  chunks.map((c) => sseEvent(null, c, opts.crlf)).join("") +
  (opts.done === false ? "" : sseEvent(null, "[DONE]", opts.crlf))

export async function startWireLlmServer(provider: Provider): Promise<WireLlmServer> {
  const apiKey = `test-key-${randomUUID()}`
  const queue: (WireReply | ((r: WireRequest) => WireReply))[] = []
  const requests: WireRequest[] = []
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const headers: Record<string, string> = {}
      req.headers.forEach((v, k) => {
        headers[k] = v
      })
      const body = (await req.json().catch(() => ({}))) as Record<string, unknown>
      const r: WireRequest = { path: new URL(req.url).pathname, headers, body, abandoned: false, finished: false }
      requests.push(r)
      const next = queue.shift()
      if (!next) return new Response("no reply queued", { status: 500 })
      const reply = typeof next === "function" ? next(r) : next
      let closed = false
      req.signal.addEventListener("abort", () => {
        if (!r.finished) r.abandoned = true
        closed = true
      })
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          for (const [i, p] of reply.pieces.entries()) {
            if (i === (reply.gate?.after ?? 0)) await reply.gate?.until
            if (closed) return
            c.enqueue(typeof p === "string" ? enc.encode(p) : p)
            // A separate write per piece: the client reads them as separate chunks.
            await Bun.sleep(1)
          }
          if (reply.holdOpen)
            await new Promise<void>((resolve) => {
              if (closed) resolve()
              req.signal.addEventListener("abort", () => resolve())
            })
          else r.finished = true
          try {
            c.close()
          } catch {}
        },
        cancel() {
          if (!r.finished) r.abandoned = true
          closed = true
        },
      })
      return new Response(stream, {
        status: reply.status ?? 200,
        headers: { "content-type": "text/event-stream", ...reply.headers },
      })
    },
  })
  const base = `http://127.0.0.1:${server.port}`
  const stop = async () => void (await server.stop(true))
  return {
    provider,
    baseUrl: provider === "anthropic" ? base : `${base}/v1`,
    apiKey,
    requests,
    script: (...r) => void queue.push(...r),
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
