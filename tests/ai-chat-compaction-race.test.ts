// What happens to the conversation while a compaction's model call runs (wire-llm-server.ts, held
// mid-answer): a question settled meanwhile (by its expiry here; an approval on another replica writes
// the same way) keeps its tool result after the summary, and a steer sent meanwhile joins the
// conversation once the compaction ends, rather than being acknowledged and dropped.
import { expect, setDefaultTimeout, test } from "bun:test"
import type { CompactResponse } from "../protocol/ai.ts"
import type { TestControlPlane } from "./support/control-plane.ts"
import { waitFor } from "./support/wait.ts"
import { askWhile, call, held, newChat, plane, reply, shape, state, steer } from "./support/wire-chat.ts"
import type { WireLlmServer } from "./support/wire-llm-server.ts"

setDefaultTimeout(60_000)

/** Starts a compaction whose summary (the chat's third model call) is held until `summary.release()`. */
async function compactHeld(llm: WireLlmServer, cp: TestControlPlane, chatId: number) {
  const summary = held(reply(llm.provider, "The user greeted."))
  llm.script(summary.reply)
  const compacting = call(cp, "POST", `/chat/${chatId}/compact`)
  await waitFor(
    "the summary's call",
    async () => llm.requests.length,
    (n) => n === 3,
  )
  return { summary, compacting }
}

test("a question that expires during a compaction keeps its result: the model is told it did not run", async () => {
  const { llm, cp } = await plane("anthropic", { questionTtlSeconds: 2 })
  await using _l = llm
  await using _c = cp
  const chatId = await newChat(cp)
  llm.script(reply("anthropic", "Hello."))
  await call(cp, "POST", `/chat/${chatId}/message`, { message: "hi" })
  await askWhile(llm, cp, chatId, async () => {})
  const { summary, compacting } = await compactHeld(llm, cp, chatId)
  // The question's two seconds pass while the model summarises.
  await waitFor(
    "the question's expiry",
    async () => shape(await state(cp, chatId)).at(-1),
    (last) => last?.[1] === "Not run: nobody",
  )
  summary.release()
  expect((await (await compacting).json()) as CompactResponse).toMatchObject({ summarisedMessages: 2 })
  expect(shape(await state(cp, chatId))).toEqual([
    ["summary", "The user greeted."],
    ["user", "nginx is down"],
    ["assistant", "I will restart nginx."],
    ["tool", "Not run: nobody"],
  ])
})

test("a steer sent during a compaction joins the conversation after the summary", async () => {
  const { llm, cp } = await plane("openai")
  await using _l = llm
  await using _c = cp
  const chatId = await newChat(cp)
  llm.script(reply("openai", "Hello."), reply("openai", "All fine."))
  await call(cp, "POST", `/chat/${chatId}/message`, { message: "hi" })
  await call(cp, "POST", `/chat/${chatId}/message`, { message: "status?" })
  const { summary, compacting } = await compactHeld(llm, cp, chatId)
  expect(await steer(cp, chatId, "and web-2?")).toEqual({ success: true, queuedBehind: "turn", questionId: null })
  summary.release()
  expect((await compacting).status).toBe(200)
  expect(shape(await state(cp, chatId))).toEqual([
    ["summary", "The user greeted."],
    ["user", "status?"],
    ["assistant", "All fine."],
    ["user", "and web-2?"],
  ])
})
