// Every error the AI chat's API can answer, each produced for real: no or a wrong credential (401
// AUTH_FAILED), an unknown or deleted chat (404 CHAT_NOT_FOUND), another user's chat (403
// ACCESS_DENIED), a question never asked, answered or expired (409 QUESTION_INVALID), no provider or
// one that fails or cannot be reached (503 AI_UNAVAILABLE), one slower than timeout_seconds (504
// TIMEOUT); bad bodies (400, 415, 422), the per-user rate limit (429), and chats surviving a restart.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MAX_CHATS_PER_USER } from "../control/ai/chats.ts"
import type { ChatState, MessageResponse, Question } from "../protocol/ai.ts"
import { AI, aiSettingsFor, chatCall, eventStream } from "./support/ai-chat.ts"
import { addUser, login } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, startLlmServer } from "./support/llm-server.ts"

setDefaultTimeout(60_000)

async function expectError(res: Response, status: number, code: string): Promise<string> {
  const body = (await res.json()) as { error?: string; code?: string }
  expect({ status: res.status, code: body.code }).toEqual({ status, code })
  expect(typeof body.error).toBe("string")
  return body.error ?? ""
}

const action = { name: "run_command", args: { command: "systemctl restart nginx", nodes: ["web-1"] } }

describe("the error table", () => {
  let llm: LlmServer
  let cp: TestControlPlane
  let otto = ""
  let vera = ""
  const clock = manualClock()

  beforeAll(async () => {
    llm = await startLlmServer("openai")
    cp = await startInProcess({ ai: aiSettingsFor(llm), clock })
    await addUser(cp, "otto", "operator")
    await addUser(cp, "vera", "viewer")
    otto = await login(cp, "otto")
    vera = await login(cp, "vera")
  })
  afterAll(async () => {
    await cp?.stop()
    await llm?.stop()
  })

  const newChat = async (token = otto) =>
    ((await (await chatCall(cp.url, token, "POST", "/chat", {})).json()) as { chatId: number }).chatId

  test("401 AUTH_FAILED without a token or with a wrong one", async () => {
    await expectError(await chatCall(cp.url, null, "POST", "/chat", {}), 401, "AUTH_FAILED")
    await expectError(await chatCall(cp.url, "chm_not_a_real_token", "GET", "/chat"), 401, "AUTH_FAILED")
    await expectError(await chatCall(cp.url, null, "POST", "/chat/1/message", { message: "hi" }), 401, "AUTH_FAILED")
  })

  test("404 CHAT_NOT_FOUND for an unknown chat and for a deleted one", async () => {
    await expectError(await chatCall(cp.url, otto, "GET", "/chat/999999"), 404, "CHAT_NOT_FOUND")
    await expectError(
      await chatCall(cp.url, otto, "POST", "/chat/999999/message", { message: "hi" }),
      404,
      "CHAT_NOT_FOUND",
    )
    const id = await newChat()
    const gone = await chatCall(cp.url, otto, "DELETE", `/chat/${id}`)
    expect(await gone.json()).toEqual({ success: true })
    await expectError(await chatCall(cp.url, otto, "GET", `/chat/${id}/question`), 404, "CHAT_NOT_FOUND")
    await expectError(await chatCall(cp.url, otto, "DELETE", `/chat/${id}`), 404, "CHAT_NOT_FOUND")
  })

  test("403 ACCESS_DENIED for another user's chat, whatever the route", async () => {
    const id = await newChat()
    for (const [method, path, body] of [
      ["GET", `/chat/${id}`, undefined],
      ["POST", `/chat/${id}/message`, { message: "mine now" }],
      ["POST", `/chat/${id}/message/stream`, { message: "mine now" }],
      ["PATCH", `/chat/${id}`, { model: "x" }],
      ["GET", `/chat/${id}/question`, undefined],
      ["POST", `/chat/${id}/answer`, { questionId: 1, positive: true }],
      ["POST", `/chat/${id}/cancel`, undefined],
      ["POST", `/chat/${id}/steer`, { message: "x" }],
      ["POST", `/chat/${id}/compact`, undefined],
      ["DELETE", `/chat/${id}`, undefined],
    ] as const)
      await expectError(await chatCall(cp.url, vera, method, path, body), 403, "ACCESS_DENIED")
    const list = (await (await chatCall(cp.url, vera, "GET", "/chat")).json()) as { chats: unknown[] }
    expect(list.chats).toEqual([])
  })

  test("409 QUESTION_INVALID for a question never asked, one already answered, and one expired", async () => {
    const id = await newChat()
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/answer`, { questionId: 424242, positive: true }),
      409,
      "QUESTION_INVALID",
    )
    llm.script({ toolCalls: [action] })
    const first = (await (
      await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "fix" })
    ).json()) as MessageResponse
    const q = first.pendingQuestion as Question
    clock.advance(301_000) // past question_ttl_seconds (300)
    const polled = await (await chatCall(cp.url, otto, "GET", `/chat/${id}/question`)).json()
    expect(polled).toEqual({ question: null })
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/answer`, { questionId: q.id, positive: true }),
      409,
      "QUESTION_INVALID",
    )
    // The model reads that nobody answered in time.
    llm.script((req) => ({ text: JSON.stringify(req.body.messages).includes("expired") ? "It expired." : "??" }))
    const next = await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "and?" })
    expect(((await next.json()) as MessageResponse).response).toBe("It expired.")
    // A question of another chat is no question of this one.
    llm.script({ toolCalls: [action] })
    const other = await newChat()
    const asked = (await (
      await chatCall(cp.url, otto, "POST", `/chat/${other}/message`, { message: "fix" })
    ).json()) as MessageResponse
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/answer`, {
        questionId: asked.pendingQuestion?.id,
        positive: true,
      }),
      409,
      "QUESTION_INVALID",
    )
  })

  test("503 AI_UNAVAILABLE when the provider fails, refuses the key, or cannot be reached; the chat goes on after", async () => {
    const id = await newChat()
    llm.script({ status: 500 })
    const failed = await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "hi" }),
      503,
      "AI_UNAVAILABLE",
    )
    expect(failed).toContain("500")
    llm.script({ status: 529 })
    const streamed = await chatCall(cp.url, otto, "POST", `/chat/${id}/message/stream`, { message: "hi" })
    expect(streamed.status).toBe(200)
    const events = await eventStream(streamed).all()
    expect(events.at(-1)).toMatchObject({ event: "error", data: { code: "AI_UNAVAILABLE" } })
    llm.script({ text: "Back." })
    const ok = await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "again" })
    expect(((await ok.json()) as MessageResponse).response).toBe("Back.")

    const wrongKey = await startInProcess({ ai: aiSettingsFor(llm, { apiKey: "sk-wrong-key-0123456789" }) })
    try {
      const t = wrongKey.adminToken
      const c = ((await (await chatCall(wrongKey.url, t, "POST", "/chat", {})).json()) as { chatId: number }).chatId
      const refused = await expectError(
        await chatCall(wrongKey.url, t, "POST", `/chat/${c}/message`, { message: "hi" }),
        503,
        "AI_UNAVAILABLE",
      )
      expect(refused).toContain("401")
      expect(refused).not.toContain("sk-wrong-key")
    } finally {
      await wrongKey.stop()
    }

    const down = await startLlmServer("anthropic")
    const settings = aiSettingsFor(down)
    await down.stop()
    const unreachable = await startInProcess({ ai: settings })
    try {
      const t = unreachable.adminToken
      const c = ((await (await chatCall(unreachable.url, t, "POST", "/chat", {})).json()) as { chatId: number }).chatId
      const msg = await expectError(
        await chatCall(unreachable.url, t, "POST", `/chat/${c}/message`, { message: "hi" }),
        503,
        "AI_UNAVAILABLE",
      )
      expect(msg).toContain(settings.baseUrl)
      expect(msg).not.toContain(settings.apiKey)
    } finally {
      await unreachable.stop()
    }
  })

  test("504 TIMEOUT when the provider takes longer than timeout_seconds", async () => {
    const slow = await startLlmServer("anthropic")
    const plane = await startInProcess({ ai: aiSettingsFor(slow, { timeoutMs: 1000 }) })
    try {
      const t = plane.adminToken
      const c = ((await (await chatCall(plane.url, t, "POST", "/chat", {})).json()) as { chatId: number }).chatId
      slow.script({ hang: "before" })
      const msg = await expectError(
        await chatCall(plane.url, t, "POST", `/chat/${c}/message`, { message: "hi" }),
        504,
        "TIMEOUT",
      )
      expect(msg).toContain("1 s")
      slow.script({ text: "half an answer", hang: "after-text" })
      const streamed = await chatCall(plane.url, t, "POST", `/chat/${c}/message/stream`, { message: "hi" })
      const events = await eventStream(streamed).all()
      // The first event names the turn; the model's words follow.
      expect(events[0]?.event).toBe("turn")
      expect(events[1]).toEqual({ event: "token", data: { text: "half " } })
      expect(events.at(-1)).toMatchObject({ event: "error", data: { code: "TIMEOUT" } })
    } finally {
      await plane.stop()
      await slow.stop()
    }
  })

  test("503 AI_UNAVAILABLE on every chat route when no provider is configured, saying how to set one", async () => {
    const bare = await startInProcess()
    try {
      for (const [method, path] of [
        ["GET", "/chat"],
        ["POST", "/chat"],
        ["GET", "/chat/1"],
        ["POST", "/chat/1/message"],
        ["GET", "/chat/1/question"],
        ["DELETE", "/chat/1"],
      ] as const) {
        const body = method === "POST" ? (path === "/chat" ? {} : { message: "hi" }) : undefined
        const msg = await expectError(
          await chatCall(bare.url, bare.adminToken, method, path, body),
          503,
          "AI_UNAVAILABLE",
        )
        expect(msg).toContain("[ai]")
        expect(msg).toContain("CHIMERA_AI_API_KEY")
      }
      await expectError(await chatCall(bare.url, null, "GET", "/chat"), 401, "AUTH_FAILED")
    } finally {
      await bare.stop()
    }
  })

  test("bad requests are 4xx that say what is wrong, never 5xx", async () => {
    const id = await newChat()
    const raw = (init: RequestInit) =>
      fetch(`${cp.url}${AI}/chat/${id}/message`, {
        method: "POST",
        ...init,
        headers: { authorization: `Bearer ${otto}`, ...init.headers },
      })
    await expectError(
      await raw({ body: "{not json", headers: { "content-type": "application/json" } }),
      400,
      "INVALID_JSON",
    )
    await expectError(await raw({ body: '{"message":"hi"}' }), 415, "UNSUPPORTED_MEDIA_TYPE")
    const missing = await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, {}),
      422,
      "VALIDATION_FAILED",
    )
    expect(missing).toContain("message")
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "" }),
      422,
      "VALIDATION_FAILED",
    )
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "x".repeat(40_000) }),
      422,
      "VALIDATION_FAILED",
    )
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/message`, { message: "hi", extra: 1 }),
      422,
      "VALIDATION_FAILED",
    )
    await expectError(await chatCall(cp.url, otto, "GET", "/chat/abc"), 422, "VALIDATION_FAILED")
    await expectError(await chatCall(cp.url, otto, "GET", "/chat/-1"), 422, "VALIDATION_FAILED")
    await expectError(
      await chatCall(cp.url, otto, "POST", "/chat", { nodeId: "a", objectId: "b" }),
      422,
      "VALIDATION_FAILED",
    )
    await expectError(await chatCall(cp.url, otto, "POST", "/chat", { nodeId: "../etc" }), 422, "VALIDATION_FAILED")
    await expectError(await chatCall(cp.url, otto, "POST", "/chat", { incidentId: 987654 }), 422, "VALIDATION_FAILED")
    await expectError(
      await chatCall(cp.url, otto, "POST", `/chat/${id}/answer`, { questionId: "x", positive: "yes" }),
      422,
      "VALIDATION_FAILED",
    )
    await expectError(
      await chatCall(cp.url, otto, "PATCH", `/chat/${id}`, { model: "bad model name" }),
      422,
      "VALIDATION_FAILED",
    )
  })
})

test("a tool call with a NUL byte is refused to the model, and a user keeps at most so many chats", async () => {
  await using llm = await startLlmServer("openai")
  await using cp = await startInProcess({ ai: aiSettingsFor(llm) })
  const t = cp.adminToken
  const id = ((await (await chatCall(cp.url, t, "POST", "/chat", {})).json()) as { chatId: number }).chatId
  llm.script(
    { toolCalls: [{ name: "run_command", args: { command: "echo \u0000; reboot", nodes: ["web-1"] } }] },
    (req) => ({ text: JSON.stringify(req.body.messages).includes("NUL byte is not allowed") ? "Refused." : "??" }),
  )
  const res = await chatCall(cp.url, t, "POST", `/chat/${id}/message`, { message: "go" })
  expect(await res.json()).toEqual({ response: "Refused.", pendingQuestion: null })
  for (let i = 1; i < MAX_CHATS_PER_USER; i++) expect((await chatCall(cp.url, t, "POST", "/chat", {})).status).toBe(201)
  await expectError(await chatCall(cp.url, t, "POST", "/chat", {}), 429, "RESOURCE_EXHAUSTED")
  expect((await chatCall(cp.url, t, "DELETE", `/chat/${id}`)).status).toBe(200)
  expect((await chatCall(cp.url, t, "POST", "/chat", {})).status).toBe(201)
})

test("a request from outside cannot claim in the audit log that a chat proposed it", async () => {
  await using cp = await startInProcess()
  const res = await fetch(`${cp.url}/api/tokens`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${cp.adminToken}`,
      "content-type": "application/json",
      "x-chimera-via": "chat",
      "x-chimera-chat": "7",
      "x-chimera-model": "forged-model",
    },
    body: JSON.stringify({ name: "forged", role: "viewer" }),
  })
  expect(res.status).toBe(201)
  const audit = (await (await cp.api("/api/audit?action=POST%20/api/tokens")).json()) as {
    entries: { detail: Record<string, unknown> | null }[]
  }
  expect(audit.entries.length).toBe(1)
  expect(audit.entries[0]?.detail).not.toHaveProperty("via")
  expect(audit.entries[0]?.detail).not.toHaveProperty("chat")
  expect(audit.entries[0]?.detail).not.toHaveProperty("model")
})

test("a user's chat turns are rate limited", async () => {
  await using llm = await startLlmServer("openai")
  await using cp = await startInProcess({
    ai: aiSettingsFor(llm),
    trust: { rateLimits: { chat: { limit: 2, windowMs: 60_000 } } },
  })
  const id = ((await (await chatCall(cp.url, cp.adminToken, "POST", "/chat", {})).json()) as { chatId: number }).chatId
  llm.script({ text: "one" }, { text: "two" })
  for (const m of ["a", "b"])
    expect((await chatCall(cp.url, cp.adminToken, "POST", `/chat/${id}/message`, { message: m })).status).toBe(200)
  const third = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${id}/message`, { message: "c" })
  expect(third.status).toBe(429)
  expect(third.headers.get("retry-after")).toBeTruthy()
  expect(llm.remaining()).toBe(0)
  expect(llm.requests.length).toBe(2)
})

test("a restart keeps chats, their messages and a pending question, which can still be answered", async () => {
  await using llm = await startLlmServer("anthropic")
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-restart-"))
  try {
    let cp = await startInProcess({ dataDir, ai: aiSettingsFor(llm) })
    const t = cp.adminToken
    const id = ((await (await chatCall(cp.url, t, "POST", "/chat", {})).json()) as { chatId: number }).chatId
    llm.script({ text: "Hello." }, { text: "I propose a restart.", toolCalls: [action] })
    await chatCall(cp.url, t, "POST", `/chat/${id}/message`, { message: "hi" })
    const asked = (await (
      await chatCall(cp.url, t, "POST", `/chat/${id}/message`, { message: "fix it" })
    ).json()) as MessageResponse
    const before = (await (await chatCall(cp.url, t, "GET", `/chat/${id}`)).json()) as ChatState
    await cp.stop()

    cp = await startInProcess({ dataDir, ai: aiSettingsFor(llm) })
    try {
      const after = (await (await chatCall(cp.url, t, "GET", `/chat/${id}`)).json()) as ChatState
      expect(after.messages).toEqual(before.messages)
      expect(after.pendingQuestion).toEqual(asked.pendingQuestion)
      const list = (await (await chatCall(cp.url, t, "GET", "/chat")).json()) as { chats: { chatId: number }[] }
      expect(list.chats.map((c) => c.chatId)).toContain(id)
      llm.script((req) => ({ text: JSON.stringify(req.body.messages).includes("rejected") ? "Left alone." : "??" }))
      const answered = await chatCall(cp.url, t, "POST", `/chat/${id}/answer`, {
        questionId: asked.pendingQuestion?.id,
        positive: false,
        wait: true,
      })
      expect(await answered.json()).toEqual({ success: true, response: "Left alone.", pendingQuestion: null })
    } finally {
      await cp.stop()
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})

test("an answer whose next model call fails (wait: true) is 503 saying the answer stands and its result is in the chat", async () => {
  await using llm = await startLlmServer("openai")
  await using cp = await startInProcess({ ai: aiSettingsFor(llm) })
  const t = cp.adminToken
  const id = ((await (await chatCall(cp.url, t, "POST", "/chat", {})).json()) as { chatId: number }).chatId
  llm.script({ text: "I propose a restart.", toolCalls: [action] }, { status: 500 })
  const asked = (await (
    await chatCall(cp.url, t, "POST", `/chat/${id}/message`, { message: "fix it" })
  ).json()) as MessageResponse
  const answered = await chatCall(cp.url, t, "POST", `/chat/${id}/answer`, {
    questionId: asked.pendingQuestion?.id,
    positive: false,
    wait: true,
  })
  expect(answered.status).toBe(503)
  const body = (await answered.json()) as { code: string; error: string }
  expect(body.code).toBe("AI_UNAVAILABLE")
  expect(body.error).toContain("your answer was recorded and its result is in the chat")
  // And so it is: the rejection is the last word of the conversation, the question gone.
  const state = (await (await chatCall(cp.url, t, "GET", `/chat/${id}`)).json()) as ChatState
  expect(state.pendingQuestion).toBeNull()
  expect(state.messages.at(-1)?.role).toBe("tool")
})
