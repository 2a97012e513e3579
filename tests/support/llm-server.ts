// A scripted language model on 127.0.0.1 that speaks the two wire formats the chat's providers use:
// Anthropic's Messages API (POST /v1/messages) and OpenAI's Chat Completions (POST /v1/chat/completions),
// with their streaming SSE events, tool calls and usage. Each test queues the replies it wants (text,
// tool calls, an HTTP error, a redirect, or a reply that hangs) and reads back every request the official SDK
// sent. Malformed requests are refused as the real APIs refuse them: a wrong key is a 401, a missing
// required field or an unanswered tool call a 400, in each API's own error shape.
import { randomUUID } from "node:crypto"

export type Provider = "anthropic" | "openai"

export interface ScriptedToolCall {
  id?: string
  name: string
  args: Record<string, unknown>
}

export interface ScriptedReply {
  /** Text of the reply, sent as these chunks (a string is split into words). */
  text?: string | string[]
  toolCalls?: ScriptedToolCall[]
  usage?: { input?: number; output?: number }
  /** Answer with this HTTP status and the API's error body instead. */
  status?: number
  /** The error body's message, with `status` ("scripted failure" when not given). */
  errorMessage?: string
  /** Answer with this redirect (status 3xx, `location` a URL) instead, as a moved provider or a hostile proxy may. */
  redirect?: { status: number; location: string }
  /** Hold the request: before any byte, or after the text (the stream stays open) until the client aborts. */
  hang?: "before" | "after-text"
  /** Answer only once this settles (a test holds the model mid-turn, e.g. to steer it). */
  gate?: Promise<void>
}

export interface RecordedRequest {
  provider: Provider
  path: string
  headers: Record<string, string>
  /** The raw JSON the SDK sent. */
  body: Record<string, unknown>
  /** The system prompt (Anthropic's `system`, or OpenAI's system message). */
  system: string
  /** The tools offered, as { name, description, schema }. */
  tools: { name: string; description: string; schema: Record<string, unknown> }[]
}

export type Script = ScriptedReply | ((request: RecordedRequest) => ScriptedReply)

export interface LlmServer extends AsyncDisposable {
  provider: Provider
  /** What `[ai] base_url` is set to for this provider. */
  baseUrl: string
  apiKey: string
  requests: RecordedRequest[]
  /** Queues replies, answered in order; a request with none queued is a 500 that says so. */
  script(...replies: Script[]): void
  /** How many queued replies are still unused. */
  remaining(): number
  stop(): Promise<void>
}

type Json = Record<string, unknown>

const chunksOf = (text: string | string[] | undefined): string[] =>
  text === undefined ? [] : Array.isArray(text) ? text : (text.match(/\S+\s*|\s+/g) ?? [])

const sse = (event: string | null, data: unknown) =>
  `${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

function anthropicError(status: number, type: string, message: string) {
  return Response.json({ type: "error", error: { type, message } }, { status })
}
function openAiError(status: number, message: string, code: string | null, type = "invalid_request_error") {
  return Response.json({ error: { message, type, param: null, code } }, { status })
}

/** The checks the Messages API makes that the chat could get wrong. */
function checkAnthropic(body: Json): string | null {
  if (typeof body.model !== "string" || body.model === "") return "model: Field required"
  if (typeof body.max_tokens !== "number") return "max_tokens: Field required"
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) return "messages: at least one message is required"
  let open: string[] = []
  for (const [i, m] of (messages as Json[]).entries()) {
    if (m.role !== "user" && m.role !== "assistant") return `messages.${i}.role: Input should be 'user' or 'assistant'`
    if (i === 0 && m.role !== "user") return 'messages: first message must use the "user" role'
    if (i > 0 && (messages as Json[])[i - 1]?.role === m.role)
      return 'messages: roles must alternate between "user" and "assistant"'
    const blocks = typeof m.content === "string" ? [{ type: "text", text: m.content }] : (m.content as Json[])
    if (!Array.isArray(blocks) || blocks.length === 0) return `messages.${i}.content: must not be empty`
    if (m.role === "user") {
      const results = blocks.filter((b) => b.type === "tool_result").map((b) => String(b.tool_use_id))
      const missing = open.filter((id) => !results.includes(id))
      if (missing.length > 0)
        return `messages.${i}: tool_use ids were found without tool_result blocks immediately after: ${missing.join(", ")}`
      open = []
    }
    for (const b of blocks) {
      if (b.type === "text" && (typeof b.text !== "string" || b.text === ""))
        return `messages.${i}: text content blocks must be non-empty`
      if (b.type === "tool_use") open.push(String(b.id))
    }
  }
  for (const [i, t] of ((body.tools as Json[] | undefined) ?? []).entries()) {
    const schema = t.input_schema as Json | undefined
    if (typeof t.name !== "string" || !/^[a-zA-Z0-9_-]{1,128}$/.test(t.name)) return `tools.${i}.name: invalid`
    if (schema?.type !== "object") return `tools.${i}.input_schema.type: Input should be 'object'`
  }
  return null
}

/** The checks Chat Completions makes that the chat could get wrong. */
function checkOpenAi(body: Json): string | null {
  if (typeof body.model !== "string" || body.model === "") return "you must provide a model parameter"
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) return "'messages' must contain at least one message"
  let open: string[] = []
  for (const [i, m] of (messages as Json[]).entries()) {
    if (!["system", "user", "assistant", "tool", "developer"].includes(String(m.role)))
      return `Invalid value for 'messages[${i}].role'`
    if (m.role === "tool") {
      if (!open.includes(String(m.tool_call_id)))
        return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.`
      open = open.filter((id) => id !== m.tool_call_id)
      continue
    }
    if (open.length > 0)
      return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${open.join(", ")}`
    if (m.role === "assistant" && Array.isArray(m.tool_calls)) open = (m.tool_calls as Json[]).map((c) => String(c.id))
    else if (typeof m.content !== "string") return `Invalid type for 'messages[${i}].content': expected a string`
  }
  for (const [i, t] of ((body.tools as Json[] | undefined) ?? []).entries()) {
    const fn = t.function as Json | undefined
    if (t.type !== "function" || typeof fn?.name !== "string")
      return `Missing required parameter: 'tools[${i}].function'`
  }
  return null
}

export async function startLlmServer(
  provider: Provider,
  opts: { apiKey?: string /** Answers any request with nothing queued (else a 500). */; fallback?: ScriptedReply } = {},
): Promise<LlmServer> {
  const apiKey = opts.apiKey ?? `test-key-${randomUUID()}`
  const queue: Script[] = []
  const requests: RecordedRequest[] = []
  const held = new Set<() => void>()

  const holdUntilAbort = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        held.delete(done)
        resolve()
      }
      held.add(done)
      signal.addEventListener("abort", done)
    })

  const record = (path: string, req: Request, body: Json): RecordedRequest => {
    const headers: Record<string, string> = {}
    req.headers.forEach((v, k) => {
      headers[k] = v
    })
    if (provider === "anthropic")
      return {
        provider,
        path,
        headers,
        body,
        system: typeof body.system === "string" ? body.system : JSON.stringify(body.system ?? ""),
        tools: ((body.tools as Json[] | undefined) ?? []).map((t) => ({
          name: String(t.name),
          description: String(t.description ?? ""),
          schema: t.input_schema as Record<string, unknown>,
        })),
      }
    const sys = ((body.messages as Json[] | undefined) ?? []).find((m) => m.role === "system")
    return {
      provider,
      path,
      headers,
      body,
      system: typeof sys?.content === "string" ? sys.content : "",
      tools: ((body.tools as Json[] | undefined) ?? []).map((t) => {
        const fn = t.function as Json
        return {
          name: String(fn.name),
          description: String(fn.description ?? ""),
          schema: fn.parameters as Record<string, unknown>,
        }
      }),
    }
  }

  const estimate = (body: Json) => Math.ceil(JSON.stringify(body).length / 4)

  function anthropicStream(reply: ScriptedReply, body: Json, signal: AbortSignal): Response {
    const enc = new TextEncoder()
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        const send = (event: string, data: unknown) => c.enqueue(enc.encode(sse(event, data)))
        const input = reply.usage?.input ?? estimate(body)
        const chunks = chunksOf(reply.text)
        send("message_start", {
          type: "message_start",
          message: {
            id: `msg_${randomUUID().replaceAll("-", "")}`,
            type: "message",
            role: "assistant",
            content: [],
            model: body.model,
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: input, output_tokens: 1 },
          },
        })
        send("ping", { type: "ping" })
        let index = 0
        if (chunks.length > 0) {
          send("content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } })
          for (const text of chunks)
            send("content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text } })
          if (reply.hang === "after-text") {
            await holdUntilAbort(signal)
            c.close()
            return
          }
          send("content_block_stop", { type: "content_block_stop", index })
          index++
        }
        for (const call of reply.toolCalls ?? []) {
          const id = call.id ?? `toolu_${randomUUID().replaceAll("-", "").slice(0, 24)}`
          send("content_block_start", {
            type: "content_block_start",
            index,
            content_block: { type: "tool_use", id, name: call.name, input: {} },
          })
          const json = JSON.stringify(call.args)
          for (let i = 0; i < json.length; i += 16)
            send("content_block_delta", {
              type: "content_block_delta",
              index,
              delta: { type: "input_json_delta", partial_json: json.slice(i, i + 16) },
            })
          send("content_block_stop", { type: "content_block_stop", index })
          index++
        }
        send("message_delta", {
          type: "message_delta",
          delta: { stop_reason: reply.toolCalls?.length ? "tool_use" : "end_turn", stop_sequence: null },
          usage: { output_tokens: reply.usage?.output ?? Math.max(1, chunks.length) },
        })
        send("message_stop", { type: "message_stop" })
        c.close()
      },
    })
    return new Response(stream, { headers: { "content-type": "text/event-stream", "request-id": randomUUID() } })
  }

  function openAiStream(reply: ScriptedReply, body: Json, signal: AbortSignal): Response {
    const enc = new TextEncoder()
    const id = `chatcmpl-${randomUUID().replaceAll("-", "")}`
    const created = Math.floor(Date.now() / 1000)
    const chunk = (delta: Json, finish: string | null = null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: body.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    })
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        const send = (data: unknown) => c.enqueue(enc.encode(sse(null, data)))
        const chunks = chunksOf(reply.text)
        send(chunk({ role: "assistant", content: "" }))
        for (const text of chunks) send(chunk({ content: text }))
        if (reply.hang === "after-text") {
          await holdUntilAbort(signal)
          c.close()
          return
        }
        for (const [index, call] of (reply.toolCalls ?? []).entries()) {
          const callId = call.id ?? `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`
          send(
            chunk({
              tool_calls: [{ index, id: callId, type: "function", function: { name: call.name, arguments: "" } }],
            }),
          )
          const json = JSON.stringify(call.args)
          for (let i = 0; i < json.length; i += 16)
            send(chunk({ tool_calls: [{ index, function: { arguments: json.slice(i, i + 16) } }] }))
        }
        send(chunk({}, reply.toolCalls?.length ? "tool_calls" : "stop"))
        if ((body.stream_options as Json | undefined)?.include_usage) {
          const input = reply.usage?.input ?? estimate(body)
          const output = reply.usage?.output ?? Math.max(1, chunks.length)
          send({
            id,
            object: "chat.completion.chunk",
            created,
            model: body.model,
            choices: [],
            usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
          })
        }
        send("[DONE]")
        c.close()
      },
    })
    return new Response(stream, { headers: { "content-type": "text/event-stream" } })
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname
      const want = provider === "anthropic" ? "/v1/messages" : "/v1/chat/completions"
      if (req.method !== "POST" || path !== want)
        return provider === "anthropic"
          ? anthropicError(404, "not_found_error", `Not Found: ${req.method} ${path}`)
          : openAiError(404, `Unknown request URL: ${req.method} ${path}`, "unknown_url")
      if (provider === "anthropic") {
        // The key travels as x-api-key or, as this SDK sends it, as a bearer token.
        const key = req.headers.get("x-api-key") ?? req.headers.get("authorization")?.replace(/^Bearer /, "")
        if (key !== apiKey) return anthropicError(401, "authentication_error", "invalid x-api-key")
        if (!req.headers.get("anthropic-version"))
          return anthropicError(400, "invalid_request_error", "anthropic-version: header is required")
      } else if (req.headers.get("authorization") !== `Bearer ${apiKey}`)
        return openAiError(401, "Incorrect API key provided.", "invalid_api_key")
      let body: Json
      try {
        body = (await req.json()) as Json
      } catch {
        return provider === "anthropic"
          ? anthropicError(400, "invalid_request_error", "There was an error parsing the body")
          : openAiError(400, "We could not parse the JSON body of your request.", null)
      }
      const problem = provider === "anthropic" ? checkAnthropic(body) : checkOpenAi(body)
      if (problem)
        return provider === "anthropic"
          ? anthropicError(400, "invalid_request_error", problem)
          : openAiError(400, problem, null)
      const recorded = record(path, req, body)
      requests.push(recorded)
      const next = queue.shift() ?? opts.fallback
      if (next === undefined)
        return provider === "anthropic"
          ? anthropicError(500, "api_error", "the scripted model has no reply queued for this request")
          : openAiError(500, "the scripted model has no reply queued for this request", null, "server_error")
      const reply = typeof next === "function" ? next(recorded) : next
      if (reply.gate) await reply.gate
      if (reply.hang === "before") {
        await holdUntilAbort(req.signal)
        return new Response(null, { status: 499 })
      }
      if (reply.redirect)
        return new Response(null, { status: reply.redirect.status, headers: { location: reply.redirect.location } })
      if (reply.status) {
        const said = reply.errorMessage ?? "scripted failure"
        return provider === "anthropic"
          ? anthropicError(reply.status, reply.status === 529 ? "overloaded_error" : "api_error", said)
          : openAiError(reply.status, said, null, "server_error")
      }
      if (body.stream !== true) return Response.json({ error: "this scripted server streams only" }, { status: 400 })
      return provider === "anthropic" ? anthropicStream(reply, body, req.signal) : openAiStream(reply, body, req.signal)
    },
  })
  const stop = async () => {
    for (const release of [...held]) release()
    await server.stop(true)
  }
  const base = `http://127.0.0.1:${server.port}`
  return {
    provider,
    baseUrl: provider === "anthropic" ? base : `${base}/v1`,
    apiKey,
    requests,
    script: (...replies) => void queue.push(...replies),
    remaining: () => queue.length,
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
