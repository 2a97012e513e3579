// The session's own answers, with a chat API that holds its turn open: a refusal made here, without
// asking the control plane, carries the same bracketed code the control plane's refusals do.
import { expect, test } from "bun:test"
import type { ChatId } from "../../protocol/ai.ts"
import type { ChatApi, ChatEvents } from "../cli/chat-api.ts"
import type { RpcEvent } from "./messages.ts"
import { createRpcSession } from "./session.ts"

test("a prompt while a turn runs, and an answer with no question, are refused with their codes", async () => {
  let release = () => {}
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  async function* turn(): ChatEvents {
    await held
    yield { event: "token", data: { text: "done" } }
  }
  const api = { send: async () => turn() } as unknown as ChatApi
  const events: RpcEvent[] = []
  const session = createRpcSession(api, 1 as ChatId, (e) => events.push(e))
  await session.handle({ n: 1, text: JSON.stringify({ type: "prompt", id: "p1", message: "first" }) })
  await session.handle({ n: 2, text: JSON.stringify({ type: "prompt", id: "p2", message: "second" }) })
  await session.handle({ n: 3, text: JSON.stringify({ type: "answer", id: "a1", positive: true }) })
  release()
  await session.drain()
  const responses = events.filter((e) => e.type === "response")
  expect(responses.find((r) => r.id === "p2")).toMatchObject({ success: false })
  expect(String(responses.find((r) => r.id === "p2")?.error)).toEndWith("(TURN_RUNNING)")
  expect(String(responses.find((r) => r.id === "a1")?.error)).toEndWith("(QUESTION_INVALID)")
  expect(responses.find((r) => r.id === "p1")).toMatchObject({ success: true })
})
