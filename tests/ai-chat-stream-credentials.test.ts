// A chat's streams (a message's, a follow) outlive the moment the guard let them in, as the event
// stream does: a credential revoked while one runs (here its user deleted) ends it with an `error`
// event at its next frame, a few seconds later at most, instead of carrying the rest of the turn.
// The turn itself goes on and is stored. The model is the wire-exact Anthropic server, held mid-answer.
import { expect, setDefaultTimeout, test } from "bun:test"
import { chatCall, eventStream } from "./support/ai-chat.ts"
import { addUser, call as apiCall, login } from "./support/auth.ts"
import { waitFor } from "./support/wait.ts"
import { held, plane, reply } from "./support/wire-chat.ts"

setDefaultTimeout(60_000)

test("a stream whose user is deleted mid-turn ends with AUTHENTICATION_FAILED, not the rest of the turn", async () => {
  const { llm, cp } = await plane("anthropic")
  try {
    await addUser(cp, "sam", "operator")
    const token = await login(cp, "sam")
    const { chatId } = (await (await chatCall(cp.url, token, "POST", "/chat", {})).json()) as { chatId: number }
    const answer = held(reply("anthropic", "Looking at the fleet: every node is congruent and healthy."))
    llm.script(answer.reply)
    const res = await chatCall(cp.url, token, "POST", `/chat/${chatId}/message/stream`, { message: "how are we?" })
    expect(res.status).toBe(200)
    const stream = eventStream(res)
    await waitFor(
      "the model's call",
      async () => llm.requests.length,
      (n) => n > 0,
    )
    expect((await apiCall(cp, cp.adminToken, "DELETE", "/api/users/sam")).status).toBe(200)
    // Past the time an answer about the credential counts for (5 s), the next frames ask again.
    await Bun.sleep(5_500)
    answer.release()
    const events = await stream.all()
    const last = events.at(-1)
    expect(last).toMatchObject({ event: "error", data: { code: "AUTHENTICATION_FAILED" } })
    expect(events.some((e) => e.event === "done")).toBe(false)
  } finally {
    await cp.stop()
    await llm.stop()
  }
})
