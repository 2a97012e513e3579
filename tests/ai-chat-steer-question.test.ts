// A steering message sent during a model call that ends with an approval question, against what the
// providers really send (wire-llm-server.ts): the steer is kept with the chat (queued behind the
// question, which it does not withdraw), the turn's answer and the chat's state say so, and the model
// reads it right after the action's result once someone approves or rejects; if the question expires
// or is withdrawn instead, it joins the conversation as the next user message. Through the chat's
// HTTP API on both providers, through `chimera code --mode rpc`, and across a restart of the control
// plane on one data dir.
import { describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { MessageResponse, SteerResponse } from "../protocol/ai.ts"
import { aiSettingsFor, doneOf, eventStream } from "./support/ai-chat.ts"
import { startInProcess } from "./support/control-plane.ts"
import type { LlmServer, Provider } from "./support/llm-server.ts"
import { startRpc } from "./support/rpc-process.ts"
import { waitFor } from "./support/wait.ts"
import { askWhile, at, COMMAND, call, held, newChat, plane, reply, shape, state, steer } from "./support/wire-chat.ts"
import { startWireLlmServer } from "./support/wire-llm-server.ts"

setDefaultTimeout(60_000)

for (const provider of ["anthropic", "openai"] as Provider[]) {
  describe(`${provider}: a steer during the call that asks`, () => {
    test("waits behind the question without withdrawing it, and reaches the model right after the approved action's result", async () => {
      const { llm, cp } = await plane(provider)
      await using _l = llm
      await using _c = cp
      const chatId = await newChat(cp)
      const steered: SteerResponse[] = []
      const done = await askWhile(llm, cp, chatId, async () => {
        steered.push(await steer(cp, chatId, "only web-1, not web-2"))
      })
      expect(steered).toEqual([{ success: true, queuedBehind: "turn", questionId: null }])
      const q = done.pendingQuestion
      expect(q?.context).toBe(COMMAND)
      expect(done.queued?.map((m) => m.content)).toEqual(["only web-1, not web-2"])

      // A steer after the turn ended, while the question waits, is queued behind it too.
      expect(await steer(cp, chatId, "and tell me the uptime")).toEqual({
        success: true,
        queuedBehind: "question",
        questionId: q?.id ?? 0,
      })
      const waiting = await state(cp, chatId)
      expect(waiting.pendingQuestion?.id).toBe(q?.id as number)
      expect(waiting.queuedMessages.map((m) => m.content)).toEqual(["only web-1, not web-2", "and tell me the uptime"])
      expect(shape(waiting)).toEqual([
        ["user", "nginx is down"],
        ["assistant", "I will restart nginx."],
      ])

      llm.script(reply(provider, "Restarted on web-1; uptime next."))
      const answered = await call(cp, "POST", `/chat/${chatId}/answer`, {
        questionId: q?.id,
        positive: true,
        wait: true,
      })
      expect(answered.status).toBe(200)
      expect(((await answered.json()) as MessageResponse).response).toBe("Restarted on web-1; uptime next.")
      // The model read the action's result, then both steers, in order.
      const result = at(llm, 1, "Approved by bootstrap")
      expect(result).toBeGreaterThan(0)
      expect(at(llm, 1, "only web-1, not web-2")).toBeGreaterThan(result)
      expect(at(llm, 1, "and tell me the uptime")).toBeGreaterThan(at(llm, 1, "only web-1, not web-2"))
      const after = await state(cp, chatId)
      expect(after.queuedMessages).toEqual([])
      expect(shape(after)).toEqual([
        ["user", "nginx is down"],
        ["assistant", "I will restart nginx."],
        ["tool", "Approved by bootstrap"],
        ["user", "only web-1, not web-2"],
        ["user", "and tell me the uptime"],
        ["assistant", "Restarted on web-1; uptime next."],
      ])
    })
  })
}

test("rejected, the model reads the rejection and then the steer", async () => {
  const { llm, cp } = await plane("openai")
  await using _l = llm
  await using _c = cp
  const chatId = await newChat(cp)
  const done = await askWhile(llm, cp, chatId, async () => void (await steer(cp, chatId, "do not restart anything")))
  llm.script(reply("openai", "Understood, nothing restarted."))
  const res = await call(cp, "POST", `/chat/${chatId}/answer/stream`, {
    questionId: done.pendingQuestion?.id,
    positive: false,
  })
  expect(doneOf(await eventStream(res).all()).response).toBe("Understood, nothing restarted.")
  expect(at(llm, 1, "do not restart anything")).toBeGreaterThan(at(llm, 1, "rejected this action"))
  expect(shape(await state(cp, chatId)).slice(2)).toEqual([
    ["tool", "Not run: bootstrap"],
    ["user", "do not restart anything"],
    ["assistant", "Understood, nothing restarted."],
  ])
})

test("at most 20 messages wait for one chat: the next steer is refused, 429, not stored, and the 20 reach the model", async () => {
  const { llm, cp } = await plane("openai")
  await using _l = llm
  await using _c = cp
  const chatId = await newChat(cp)
  const done = await askWhile(llm, cp, chatId, async () => void (await steer(cp, chatId, "steer 1")))
  for (let i = 2; i <= 20; i++) await steer(cp, chatId, `steer ${i}`)
  const refused = await call(cp, "POST", `/chat/${chatId}/steer`, { message: "steer 21" })
  expect(refused.status).toBe(429)
  expect(await refused.json()).toMatchObject({
    code: "RESOURCE_EXHAUSTED",
    error: expect.stringContaining("20 messages already wait"),
  })
  expect((await state(cp, chatId)).queuedMessages).toHaveLength(20)
  llm.script(reply("openai", "Read all twenty."))
  const answered = await call(cp, "POST", `/chat/${chatId}/answer`, {
    questionId: done.pendingQuestion?.id,
    positive: false,
    wait: true,
  })
  expect(answered.status).toBe(200)
  expect(at(llm, 1, "steer 20")).toBeGreaterThan(at(llm, 1, "steer 1"))
  expect(at(llm, 1, "steer 21")).toBe(-1)
  // Delivered, they no longer count: the chat takes steers again.
  expect((await state(cp, chatId)).queuedMessages).toEqual([])
})

test("a question that expires, or one withdrawn by cancel, leaves the steer as the next user message", async () => {
  const { llm, cp } = await plane("anthropic", { questionTtlSeconds: 2 })
  await using _l = llm
  await using _c = cp
  const expiring = await newChat(cp)
  await askWhile(llm, cp, expiring, async () => void (await steer(cp, expiring, "check the logs first")))
  const expired = await waitFor(
    "the question's expiry",
    () => state(cp, expiring),
    (s) => s.pendingQuestion === null && s.queuedMessages.length === 0,
  )
  expect(shape(expired).slice(2)).toEqual([
    ["tool", "Not run: nobody"],
    ["user", "check the logs first"],
  ])
  // The next message follows it, and the model reads both.
  llm.script(reply("anthropic", "Logs first, then."))
  await call(cp, "POST", `/chat/${expiring}/message`, { message: "well?" })
  expect(at(llm, 1, "well?")).toBeGreaterThan(at(llm, 1, "check the logs first"))

  const withdrawn = await newChat(cp)
  await askWhile(llm, cp, withdrawn, async () => void (await steer(cp, withdrawn, "wait for the deploy")))
  expect((await call(cp, "POST", `/chat/${withdrawn}/cancel`)).status).toBe(200)
  const after = await state(cp, withdrawn)
  expect(after.pendingQuestion).toBeNull()
  expect(after.queuedMessages).toEqual([])
  expect(shape(after).slice(2)).toEqual([
    ["tool", "Not run: the"],
    ["user", "wait for the deploy"],
  ])
})

test("a steer queued behind a question outlives a restart of the control plane and follows the answer", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-steer-restart-"))
  try {
    const llm = await startWireLlmServer("anthropic")
    await using _l = llm
    const settings = aiSettingsFor(llm as unknown as LlmServer)
    const first = await startInProcess({ dataDir, ai: settings })
    const chatId = await newChat(first)
    const done = await askWhile(llm, first, chatId, async () => void (await steer(first, chatId, "use the canary")))
    await first.stop()

    await using again = await startInProcess({ dataDir, ai: settings })
    const kept = await state(again, chatId)
    expect(kept.pendingQuestion?.id).toBe(done.pendingQuestion?.id as number)
    expect(kept.queuedMessages.map((m) => m.content)).toEqual(["use the canary"])
    llm.script(reply("anthropic", "Canary it is."))
    const res = await call(again, "POST", `/chat/${chatId}/answer`, {
      questionId: done.pendingQuestion?.id,
      positive: false,
      wait: true,
    })
    expect(res.status).toBe(200)
    expect(at(llm, 1, "use the canary")).toBeGreaterThan(at(llm, 1, "rejected this action"))
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})

test("chimera code --mode rpc: the steer's response and a `queued` event say it waits behind the question; answered, the model reads it", async () => {
  const { llm, cp } = await plane("anthropic")
  await using _l = llm
  await using _c = cp
  const home = await mkdtemp(join(tmpdir(), "chimera-steer-rpc-"))
  try {
    await using rpc = startRpc({
      HOME: home,
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_DATA_DIR: join(home, "data"),
    })
    const proposal = held(reply("anthropic", "I will restart nginx.", true))
    llm.script(proposal.reply)
    rpc.send({ type: "prompt", id: "p1", message: "nginx is down" })
    await waitFor(
      "the model's call",
      async () => llm.requests.length,
      (n) => n > 0,
    )
    rpc.send({ type: "steer", id: "s1", message: "only web-1" })
    expect((await rpc.response("s1")).line).toMatchObject({
      success: true,
      data: { queued_behind: "turn", question_id: null },
    })
    proposal.release()
    const asked = await rpc.response("p1")
    const question = asked.seen.find((l) => l.type === "question")
    const questionId = question?.question_id as number
    expect(asked.seen.find((l) => l.type === "queued")).toMatchObject({
      question_id: questionId,
      messages: [{ content: "only web-1" }],
    })

    rpc.send({ type: "steer", id: "s2", message: "then the uptime" })
    expect((await rpc.response("s2")).line).toMatchObject({
      success: true,
      data: { queued_behind: "question", question_id: questionId },
    })
    rpc.send({ type: "get_state", id: "g1" })
    const seen = (await rpc.response("g1")).seen.find((l) => l.type === "state")
    expect(seen).toMatchObject({
      pending_question: questionId,
      queued_messages: [{ content: "only web-1" }, { content: "then the uptime" }],
    })

    llm.script(reply("anthropic", "Done on web-1."))
    rpc.send({ type: "answer", id: "a1", positive: true })
    expect((await rpc.response("a1")).line).toMatchObject({ success: true })
    const result = at(llm, 1, "Approved by bootstrap")
    expect(at(llm, 1, "only web-1")).toBeGreaterThan(result)
    expect(at(llm, 1, "then the uptime")).toBeGreaterThan(at(llm, 1, "only web-1"))
    expect(await rpc.end()).toBe(0)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})
