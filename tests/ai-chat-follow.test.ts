// Following a running chat turn through any replica (GET /chat/:id/follow): a client whose replica
// died, or that a load balancer moved, reconnects through another and sees the turn live, from its
// first event, as its own stream would have shown it: the model's words while it writes them, the
// tool events, the question, and the `done`. On SQLite (one process) the same route follows from
// memory. The model is the wire-exact Anthropic server (wire-llm-server.ts), held mid-answer.
import { expect, setDefaultTimeout, test } from "bun:test"
import { FOLLOWS_PER_USER } from "../control/api/ai-chat.ts"
import type { ChatStreamEvent } from "../protocol/ai.ts"
import { AI, doneOf, eventStream } from "./support/ai-chat.ts"
import { chatReplicaSuite, twoReplicas } from "./support/chat-replicas.ts"
import type { TestControlPlane } from "./support/control-plane.ts"
import { waitFor } from "./support/wait.ts"
import { call, heldMessage, newChat, plane, state } from "./support/wire-chat.ts"
import { anthropicEvents, sseEvent, type WireReply } from "./support/wire-llm-server.ts"

setDefaultTimeout(90_000)

const suite = chatReplicaSuite()

/** "Looking " then "at the fleet." and a run_command proposal: held (by heldMessage) after the first words. */
function proposal(): WireReply {
  const events = anthropicEvents({
    blocks: [
      { text: ["Looking ", "at the fleet."] },
      {
        toolUse: { id: "toolu_01", name: "run_command", json: ["", '{"command": "uptime", ', '"nodes": ["web-1"]}'] },
      },
    ],
    stopReason: "tool_use",
  })
  // heldMessage holds a reply after its first three pieces: here, up to the first words.
  const [start, ping, ...rest] = events.map(([name, data]) => sseEvent(name, data))
  return { pieces: [`${start}${ping}`, ...rest] }
}

const words = (events: ChatStreamEvent[]) => events.flatMap((e) => (e.event === "token" ? [e.data.text] : [])).join("")

async function follow(cp: TestControlPlane, chatId: number) {
  const res = await call(cp, "GET", `/chat/${chatId}/follow`)
  expect(res.status).toBe(200)
  expect(res.headers.get("content-type")).toStartWith("text/event-stream")
  return eventStream(res)
}

test("through another replica, a running turn is followed live from its first event to its done", async () => {
  await using r = await twoReplicas(suite.pg, suite.llm, "follow_live")
  const chatId = await newChat(r.a)
  const reply = proposal()
  const turn = await heldMessage(suite.llm, r.a, chatId, { ...reply }, "is web-1 up?")
  // Nothing to follow where no turn runs: said as such.
  const idle = await newChat(r.a)
  const none = await call(r.b, "GET", `/chat/${idle}/follow`)
  expect(none.status).toBe(409)
  expect(((await none.json()) as { code: string }).code).toBe("NO_TURN_RUNNING")

  const followed = await follow(r.b, chatId)
  // The model's first words reach the follower on B while the model is still writing (its answer held).
  const early = await followed.until((events) => words(events).includes("Looking"))
  expect(early[0]).toEqual({ event: "turn", data: { turnId: (await state(r.b, chatId)).turnId as string } })
  expect(suite.llm.requests[turn.request]?.finished).toBe(false)
  turn.release()
  const own = await turn.stream.all()
  const seen = await followed.all()
  // The follower saw what the turn's own stream carried: words, the proposal's tool event, the question, done.
  expect(words(seen)).toBe(words(own))
  expect(seen.filter((e) => e.event !== "token")).toEqual(own.filter((e) => e.event !== "token"))
  expect(seen.map((e) => e.event).filter((n) => n !== "token")).toEqual(["turn", "tool", "question", "done"])
  expect(doneOf(seen).pendingQuestion?.context).toBe("uptime")
})

test("a follow that begins late reads the turn from its start; on SQLite the one process follows from memory", async () => {
  const { llm: local, cp } = await plane("anthropic")
  try {
    const chatId = await newChat(cp)
    const turn = await heldMessage(local, cp, chatId, proposal(), "is web-1 up?")
    await turn.stream.until((events) => words(events).includes("Looking"))
    const followed = await follow(cp, chatId)
    const early = await followed.until((events) => words(events).includes("Looking"))
    expect(early[0]?.event).toBe("turn")
    turn.release()
    const own = await turn.stream.all()
    expect(await followed.all()).toEqual(own)
  } finally {
    await cp.stop()
    await local.stop()
  }
})

test("one user holds at most FOLLOWS_PER_USER follows at once; a closed one, or its turn's end, gives its place back", async () => {
  const { llm: local, cp } = await plane("anthropic")
  try {
    const chatId = await newChat(cp)
    const turn = await heldMessage(local, cp, chatId, proposal(), "is web-1 up?")
    await turn.stream.until((events) => words(events).includes("Looking"))
    const opened = await Promise.all(
      Array.from({ length: FOLLOWS_PER_USER }, async () => {
        const controller = new AbortController()
        const res = await fetch(`${cp.url}${AI}/chat/${chatId}/follow`, {
          headers: { authorization: `Bearer ${cp.adminToken}` },
          signal: controller.signal,
        })
        expect(res.status).toBe(200)
        return { controller, res }
      }),
    )
    const refused = await call(cp, "GET", `/chat/${chatId}/follow`)
    expect(refused.status).toBe(429)
    expect(await refused.text()).toContain(`at most ${FOLLOWS_PER_USER} chat follows`)
    // A client that goes away gives its place back (the server sees it close at its next write).
    opened[0]?.controller.abort()
    await waitFor(
      "a place given back by a closed follow",
      async () => {
        const res = await call(cp, "GET", `/chat/${chatId}/follow`)
        await res.body?.cancel()
        return res.status
      },
      (status) => status === 200,
    )
    // The turn's end ends every follow, and gives every place back.
    turn.release()
    await turn.stream.all()
    for (const { res } of opened.slice(1)) await res.text()
    const next = await heldMessage(local, cp, chatId, proposal(), "and web-2?")
    await next.stream.until((events) => words(events).includes("Looking"))
    const again = await Promise.all(
      Array.from({ length: FOLLOWS_PER_USER }, () => call(cp, "GET", `/chat/${chatId}/follow`)),
    )
    expect(again.map((r) => r.status)).toEqual(Array(FOLLOWS_PER_USER).fill(200))
    next.release()
    await next.stream.all()
    await Promise.all(again.map((r) => r.text()))
  } finally {
    await cp.stop()
    await local.stop()
  }
})
