// What happens to the conversation while a compaction's model call runs (wire-llm-server.ts, held
// mid-answer): a steer sent meanwhile joins the conversation once the compaction ends, rather than
// being acknowledged and dropped.
import { expect, setDefaultTimeout, test } from "bun:test"
import { waitFor } from "./support/wait.ts"
import { call, held, newChat, plane, reply, shape, state, steer } from "./support/wire-chat.ts"

setDefaultTimeout(60_000)

test("a steer sent during a compaction joins the conversation after the summary", async () => {
  const { llm, cp } = await plane("openai")
  await using _l = llm
  await using _c = cp
  const chatId = await newChat(cp)
  llm.script(reply("openai", "Hello."), reply("openai", "All fine."))
  await call(cp, "POST", `/chat/${chatId}/message`, { message: "hi" })
  await call(cp, "POST", `/chat/${chatId}/message`, { message: "status?" })
  const summary = held(reply("openai", "The user greeted."))
  llm.script(summary.reply)
  const compacting = call(cp, "POST", `/chat/${chatId}/compact`)
  await waitFor(
    "the summary's call",
    async () => llm.requests.length,
    (n) => n === 3,
  )
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
