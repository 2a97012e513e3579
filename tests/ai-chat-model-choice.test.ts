// A chat runs only on a model the admin allowed: `[ai] model` and what `[ai] models` adds. The
// provider's key and its bill are the admin's, so a viewer who names any other model, making a chat or
// switching one, gets 422 with the list and the provider hears nothing of it; an allowed one works;
// and a chat stored with a model the config has since dropped runs on `[ai] model`.
import { expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ChatState } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall } from "./support/ai-chat.ts"
import { addUser, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { startLlmServer } from "./support/llm-server.ts"

setDefaultTimeout(60_000)

const DEFAULT = "gpt-test-1"
const CHEAP = "gpt-test-mini"

test("a viewer naming a model the admin did not allow gets 422 naming the allowed ones; the provider sees no request", async () => {
  await using llm = await startLlmServer("openai")
  await using cp = await startInProcess({ ai: aiSettingsFor(llm, { models: [CHEAP] }) })
  await addUser(cp, "vera", "viewer")
  const vera = await login(cp, "vera")

  const made = await chatCall(cp.url, vera, "POST", "/chat", { model: "o1-pro" })
  expect(made.status).toBe(422)
  const said = (await made.json()) as { error: string; code: string; detail: { allowed: string[] } }
  expect(said.code).toBe("VALIDATION_FAILED")
  expect(said.error).toContain('"o1-pro"')
  expect(said.error).toContain(`${DEFAULT}, ${CHEAP}`)
  expect(said.detail.allowed).toEqual([DEFAULT, CHEAP])
  expect(((await (await chatCall(cp.url, vera, "GET", "/chat")).json()) as { chats: unknown[] }).chats).toEqual([])

  const { chatId } = (await (await chatCall(cp.url, vera, "POST", "/chat", {})).json()) as { chatId: number }
  const switched = await chatCall(cp.url, vera, "PATCH", `/chat/${chatId}`, { model: "o1-pro" })
  expect(switched.status).toBe(422)
  expect(((await switched.json()) as { error: string }).error).toContain(`${DEFAULT}, ${CHEAP}`)
  expect(((await (await chatCall(cp.url, vera, "GET", `/chat/${chatId}`)).json()) as ChatState).model).toBe(DEFAULT)
  expect(llm.requests).toEqual([])

  llm.script({ text: "Hello." })
  const res = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "hi" })
  expect(res.status).toBe(200)
  expect(llm.requests.map((r) => r.body.model)).toEqual([DEFAULT])
})

test("a model the admin allowed in [ai] models is used, and a chat switches back to the default", async () => {
  await using llm = await startLlmServer("anthropic")
  await using cp = await startInProcess({ ai: aiSettingsFor(llm, { models: ["claude-test-mini"] }) })
  await addUser(cp, "vera", "viewer")
  const vera = await login(cp, "vera")
  const made = await chatCall(cp.url, vera, "POST", "/chat", { model: "claude-test-mini" })
  expect(made.status).toBe(201)
  const { chatId } = (await made.json()) as { chatId: number }
  llm.script({ text: "Small." }, { text: "Default." })
  expect((await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "one" })).status).toBe(200)
  const back = await chatCall(cp.url, vera, "PATCH", `/chat/${chatId}`, { model: "claude-test-1" })
  expect(back.status).toBe(200)
  expect((await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "two" })).status).toBe(200)
  expect(llm.requests.map((r) => r.body.model)).toEqual(["claude-test-mini", "claude-test-1"])
})

test("a chat stored with a model the config no longer allows runs on [ai] model", async () => {
  await using llm = await startLlmServer("openai")
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-models-"))
  try {
    const before = await startInProcess({ dataDir, ai: aiSettingsFor(llm, { models: [CHEAP] }) })
    const t = before.adminToken
    const { chatId } = (await (await chatCall(before.url, t, "POST", "/chat", { model: CHEAP })).json()) as {
      chatId: number
    }
    await before.stop()

    await using cp = await startInProcess({ dataDir, ai: aiSettingsFor(llm) })
    const state = (await (await chatCall(cp.url, t, "GET", `/chat/${chatId}`)).json()) as ChatState
    expect(state.model).toBe(DEFAULT)
    const list = (await (await chatCall(cp.url, t, "GET", "/chat")).json()) as { chats: { model: string }[] }
    expect(list.chats.map((c) => c.model)).toEqual([DEFAULT])
    llm.script({ text: "Hello." })
    expect((await chatCall(cp.url, t, "POST", `/chat/${chatId}/message`, { message: "hi" })).status).toBe(200)
    expect(llm.requests.map((r) => r.body.model)).toEqual([DEFAULT])
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})
