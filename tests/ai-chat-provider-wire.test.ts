// The chat against what the providers really send, byte for byte (wire-llm-server.ts): the documented
// event shapes of Anthropic's Messages stream (message_start, ping, content_block_start/delta/stop with
// text_delta and input_json_delta, message_delta, message_stop, an `error` event mid-stream) and of
// OpenAI's Chat Completions stream (tool_calls deltas by index with the arguments in pieces, the usage
// chunk, [DONE]), as the network delivers them: cut inside UTF-8 characters and `data:` lines, with
// CRLF line ends. Also what compatible servers send differently (a usage chunk whose choices are null
// or missing, a call's id and name repeated in every delta), a stream cut short, the providers' error
// answers, and a cancel or a timeout that must close the provider's request. Driven through the chat's
// HTTP API and `chimera code --mode rpc`.
import { describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ChatState, ChatStreamEvent } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall, eventStream } from "./support/ai-chat.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import type { LlmServer, Provider } from "./support/llm-server.ts"
import { startRpc } from "./support/rpc-process.ts"
import { waitFor } from "./support/wait.ts"
import {
  anthropicEvents,
  anthropicSse,
  openAiChunks,
  openAiSse,
  shred,
  startWireLlmServer,
  type WireReply,
} from "./support/wire-llm-server.ts"

setDefaultTimeout(60_000)

const TEXT = ["Zürich ", "🚀 naïve ", "日本語 ", "€uro"]
const COMMAND = "systemctl restart nginx # ünïcödé ✓"
/** The arguments of a run_command call as a model streams them: cut inside a string and a character. */
const ARGS = ["", '{"comm', `and": "${COMMAND.slice(0, 27)}`, `${COMMAND.slice(27)}", "no`, 'des": ["web-1"]}']

/** A reply with TEXT and, if asked, the run_command call, as `provider` sends it, shredded, CRLF. */
function reply(provider: Provider, opts: { call?: boolean; crlf?: boolean } = {}): WireReply {
  const sse =
    provider === "anthropic"
      ? anthropicSse(
          anthropicEvents({
            blocks: [
              { text: TEXT },
              ...(opts.call ? [{ toolUse: { id: "toolu_01", name: "run_command", json: ARGS } }] : []),
            ],
            stopReason: opts.call ? "tool_use" : "end_turn",
          }),
          opts.crlf,
        )
      : openAiSse(
          openAiChunks({
            text: TEXT,
            toolCalls: opts.call ? [{ id: "call_01", name: "run_command", json: ARGS }] : [],
          }),
          { crlf: opts.crlf },
        )
  return { pieces: shred(sse) }
}

async function plane(provider: Provider, timeoutMs = 60_000) {
  const llm = await startWireLlmServer(provider)
  const cp = await startInProcess({ ai: aiSettingsFor(llm as unknown as LlmServer, { timeoutMs }) })
  return { llm, cp }
}

async function newChat(cp: TestControlPlane): Promise<number> {
  return ((await (await chatCall(cp.url, cp.adminToken, "POST", "/chat", {})).json()) as { chatId: number }).chatId
}

const tokens = (events: ChatStreamEvent[]) => events.flatMap((e) => (e.event === "token" ? [e.data.text] : [])).join("")

async function streamMessage(cp: TestControlPlane, chatId: number, message: string) {
  const res = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message/stream`, { message })
  expect(res.status).toBe(200)
  return eventStream(res).all()
}

async function state(cp: TestControlPlane, chatId: number): Promise<ChatState> {
  return (await (await chatCall(cp.url, cp.adminToken, "GET", `/chat/${chatId}`)).json()) as ChatState
}

for (const provider of ["anthropic", "openai"] as Provider[]) {
  describe(`${provider}, as its API sends it`, () => {
    test("a reply cut inside characters and data: lines, CRLF or LF, arrives whole: each word once, the call's arguments exact", async () => {
      const { llm, cp } = await plane(provider)
      await using _l = llm
      await using _c = cp
      const chatId = await newChat(cp)
      llm.script(reply(provider, { crlf: true }))
      const first = await streamMessage(cp, chatId, "hello")
      expect(tokens(first)).toBe(TEXT.join(""))
      expect(first.at(-1)).toEqual({ event: "done", data: { response: TEXT.join(""), pendingQuestion: null } })

      llm.script(reply(provider, { call: true }))
      const second = await streamMessage(cp, chatId, "restart nginx")
      expect(tokens(second)).toBe(TEXT.join(""))
      const proposed = second.find((e) => e.event === "tool")
      expect(proposed?.data).toMatchObject({
        tool_name: "run_command",
        tool_args: { command: COMMAND, nodes: ["web-1"] },
        status: "pending_approval",
      })
      const question = second.find((e) => e.event === "question")
      expect(question?.event === "question" && question.data.context).toBe(COMMAND)
      const stored = (await state(cp, chatId)).messages.filter((m) => m.role === "assistant")
      expect(stored.map((m) => m.content)).toEqual([TEXT.join(""), TEXT.join("")])
    })

    test("a provider error in the middle of the stream ends it with an error event (503 unstreamed); the chat goes on", async () => {
      const { llm, cp } = await plane(provider)
      await using _l = llm
      await using _c = cp
      const chatId = await newChat(cp)
      const failing = (): WireReply => {
        if (provider === "anthropic") {
          const overloaded = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
          return {
            pieces: shred(
              anthropicSse(
                anthropicEvents({ blocks: [{ text: TEXT }], insert: [{ after: 5, event: "error", data: overloaded }] }),
              ),
            ),
          }
        }
        const said = {
          error: { message: "The server had an error while processing your request.", type: "server_error" },
        }
        return { pieces: shred(openAiSse([...openAiChunks({ text: TEXT }).slice(0, 3), said], { done: false })) }
      }
      llm.script(failing(), failing(), reply(provider))
      const events = await streamMessage(cp, chatId, "hello")
      expect(events.at(-1)).toMatchObject({ event: "error", data: { code: "AI_UNAVAILABLE" } })
      expect(JSON.stringify(events.at(-1))).toContain(
        provider === "anthropic" ? "Overloaded" : "The server had an error",
      )
      const plain = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message`, { message: "again" })
      expect(plain.status).toBe(503)
      const body = await plain.text()
      expect(body).toContain("AI_UNAVAILABLE")
      expect(body).not.toContain(llm.apiKey)
      expect((await streamMessage(cp, chatId, "and now")).at(-1)).toMatchObject({ event: "done" })
    })

    test("a stream cut short, before the provider said the answer was over, is an error, not a finished answer", async () => {
      const { llm, cp } = await plane(provider)
      await using _l = llm
      await using _c = cp
      const chatId = await newChat(cp)
      // The connection closes cleanly after a few words, as a proxy that gives up does.
      const cut =
        provider === "anthropic"
          ? anthropicSse(anthropicEvents({ blocks: [{ text: TEXT }] }).slice(0, 5))
          : openAiSse(openAiChunks({ text: TEXT }).slice(0, 3), { done: false })
      llm.script({ pieces: shred(cut) })
      const events = await streamMessage(cp, chatId, "hello")
      expect(tokens(events)).toBe(TEXT.slice(0, 2).join(""))
      expect(events.at(-1)).toMatchObject({ event: "error", data: { code: "AI_UNAVAILABLE" } })
      expect(JSON.stringify(events.at(-1))).toContain("ended before")
      // The fragment is not kept as the assistant's answer.
      expect((await state(cp, chatId)).messages.filter((m) => m.role === "assistant")).toEqual([])
    })

    test("a cancel mid-stream, and a timeout, close the provider's request", async () => {
      const { llm, cp } = await plane(provider, 2_000)
      await using _l = llm
      await using _c = cp
      const chatId = await newChat(cp)
      const stalled = (): WireReply => {
        const sse =
          provider === "anthropic"
            ? anthropicSse(anthropicEvents({ blocks: [{ text: TEXT }] }).slice(0, 5))
            : openAiSse(openAiChunks({ text: TEXT }).slice(0, 3), { done: false })
        return { pieces: shred(sse), holdOpen: true }
      }
      llm.script(stalled(), stalled())
      const res = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message/stream`, { message: "go" })
      const stream = eventStream(res)
      await stream.until((events) => tokens(events) === TEXT.slice(0, 2).join(""))
      expect((await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/cancel`)).status).toBe(200)
      const events = await stream.all()
      expect(events.at(-1)).toMatchObject({ event: "done", data: { cancelled: true } })
      await waitFor("the provider's request closed", async () => llm.requests[0]?.abandoned, Boolean)

      const timed = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message`, { message: "again" })
      expect(timed.status).toBe(504)
      await waitFor("the timed-out request closed", async () => llm.requests[1]?.abandoned, Boolean)
    })
  })
}

describe("OpenAI-compatible servers that differ from OpenAI", () => {
  test("a usage chunk whose choices are null or missing (as vLLM and some proxies send it) ends the answer normally", async () => {
    const { llm, cp } = await plane("openai")
    await using _l = llm
    await using _c = cp
    const chatId = await newChat(cp)
    for (const usageChoices of ["null", "absent"] as const) {
      llm.script({ pieces: shred(openAiSse(openAiChunks({ text: TEXT, usageChoices }))) })
      const events = await streamMessage(cp, chatId, `usage with choices ${usageChoices}`)
      expect(events.at(-1)).toEqual({ event: "done", data: { response: TEXT.join(""), pendingQuestion: null } })
    }
  })

  test("a call whose id and name come again in every delta is one call to that tool, its arguments joined", async () => {
    const { llm, cp } = await plane("openai")
    await using _l = llm
    await using _c = cp
    const chatId = await newChat(cp)
    llm.script({
      pieces: shred(
        openAiSse(
          openAiChunks({
            text: TEXT,
            toolCalls: [{ id: "call_01", name: "run_command", json: ARGS }],
            repeatNames: true,
          }),
        ),
      ),
    })
    const events = await streamMessage(cp, chatId, "restart nginx")
    const tools = events.filter((e) => e.event === "tool")
    expect(tools.map((e) => e.data)).toEqual([
      {
        tool_call_id: "call_01",
        tool_name: "run_command",
        tool_args: { command: COMMAND, nodes: ["web-1"] },
        status: "pending_approval",
        result: null,
      },
    ])
  })
})

describe("the providers' error answers", () => {
  const answers: Record<Provider, { status: number; headers?: Record<string, string>; body: unknown; said: string }[]> =
    {
      anthropic: [
        {
          status: 429,
          headers: { "retry-after": "17" },
          body: {
            type: "error",
            error: {
              type: "rate_limit_error",
              message: "Number of request tokens has exceeded your per-minute rate limit",
            },
          },
          said: "answered 429: Number of request tokens has exceeded your per-minute rate limit",
        },
        {
          status: 529,
          body: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
          said: "answered 529: Overloaded",
        },
        {
          status: 400,
          body: {
            type: "error",
            error: { type: "invalid_request_error", message: "prompt is too long: 208310 tokens > 200000 maximum" },
          },
          said: "answered 400: prompt is too long",
        },
      ],
      openai: [
        {
          status: 429,
          headers: { "retry-after": "2" },
          body: {
            error: {
              message: "Rate limit reached for gpt-4o on tokens per min (TPM). Please try again in 2s.",
              type: "tokens",
              param: null,
              code: "rate_limit_exceeded",
            },
          },
          said: "answered 429: Rate limit reached",
        },
        {
          status: 400,
          body: {
            error: {
              message: "This model's maximum context length is 128000 tokens.",
              type: "invalid_request_error",
              param: "messages",
              code: "context_length_exceeded",
            },
          },
          said: "answered 400: This model's maximum context length is 128000 tokens.",
        },
      ],
    }
  for (const provider of ["anthropic", "openai"] as Provider[])
    test(`${provider}: each is a 503 with the provider's own words, the key never in it`, async () => {
      const { llm, cp } = await plane(provider)
      await using _l = llm
      await using _c = cp
      const chatId = await newChat(cp)
      for (const a of answers[provider]) {
        llm.script({
          status: a.status,
          headers: { "content-type": "application/json", ...a.headers },
          pieces: [JSON.stringify(a.body)],
        })
        const res = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message`, { message: "hi" })
        const body = (await res.json()) as { error: string; code: string }
        expect({ status: res.status, code: body.code }).toEqual({ status: 503, code: "AI_UNAVAILABLE" })
        expect(body.error).toContain(a.said)
        expect(body.error).not.toContain(llm.apiKey)
      }
    })
})

test("chimera code --mode rpc: a provider failing mid-answer fails that prompt in words; a cancel closes the provider's request", async () => {
  const { llm, cp } = await plane("anthropic")
  await using _l = llm
  await using _c = cp
  const home = await mkdtemp(join(tmpdir(), "chimera-wire-rpc-"))
  try {
    const overloaded = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
    llm.script(
      {
        pieces: shred(
          anthropicSse(
            anthropicEvents({ blocks: [{ text: TEXT }], insert: [{ after: 5, event: "error", data: overloaded }] }),
          ),
        ),
      },
      { pieces: shred(anthropicSse(anthropicEvents({ blocks: [{ text: TEXT }] }).slice(0, 5))), holdOpen: true },
      reply("anthropic", { crlf: true }),
    )
    await using rpc = startRpc({
      HOME: home,
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_DATA_DIR: join(home, "data"),
    })
    rpc.send({ type: "prompt", id: 1, message: "hello" })
    const failed = await rpc.response(1)
    expect(failed.line).toMatchObject({ success: false })
    expect(String(failed.line.error)).toContain("Overloaded")
    expect(String(failed.line.error)).toEndWith("(AI_UNAVAILABLE)")

    rpc.send({ type: "prompt", id: 2, message: "stall" })
    await rpc.next((l) => l.type === "message" && l.done === false, "a first delta")
    rpc.send({ type: "cancel", id: 3 })
    expect((await rpc.response(3)).line).toMatchObject({ success: true })
    expect((await rpc.response(2)).line).toMatchObject({ success: false, error: "cancelled" })
    await waitFor("the provider's request closed", async () => llm.requests[1]?.abandoned, Boolean)

    rpc.send({ type: "prompt", id: 4, message: "whole" })
    const { line, seen } = await rpc.response(4)
    expect(line).toMatchObject({ success: true })
    expect(seen.at(-2)).toMatchObject({ type: "message", content: TEXT.join(""), done: true })
    expect(await rpc.end()).toBe(0)
    expect(rpc.stderr()).not.toContain(llm.apiKey)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})
