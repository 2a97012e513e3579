// `chimera code --mode rpc` as an editor drives it, against a real control plane whose chat talks to
// the scripted model: the documented exchange byte for byte (event, then response), every command
// type (prompt, steer, cancel, get_state, compact, set_model, answer) with its events and response,
// a turn cancelled mid-stream and one steered mid-turn, an approval that really changes the node,
// then 1,000 generated bad lines each answered by an error naming its line, and a session that still
// works after them. EOF ends the process with 0 and the chat is deleted.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import fc from "fast-check"
import { enrollNode } from "./support/auth.ts"
import { type ChatPlane, chatIds, startChatPlane, TEST_MODEL } from "./support/chat-plane.ts"
import { type RpcLine, startRpc } from "./support/rpc-process.ts"
import { firstControl } from "./support/terminal.ts"
import { waitFor } from "./support/wait.ts"

const CLOSURE = "/nix/store/0c5k6m3hq9x1w2b4v7n8p0r1s2d3f4g5-chimera-test-system-2"
let plane: ChatPlane

beforeAll(async () => {
  plane = await startChatPlane({ models: ["scripted-model-2"] })
  await enrollNode(plane.cp, "web-1")
})
afterAll(async () => {
  await plane?.[Symbol.asyncDispose]()
})

const messages = (seen: RpcLine[]) => seen.filter((l) => l.type === "message")
const deltas = (seen: RpcLine[]) =>
  messages(seen)
    .filter((l) => l.done === false)
    .map((l) => l.content)
    .join("")

describe("chimera code --mode rpc", () => {
  test("the documented exchange: the assistant's message, then the prompt's response", async () => {
    plane.llm.script({ text: "auth.py main.py" })
    await using rpc = startRpc(plane.env)
    rpc.send('{"type": "prompt", "id": "r1", "message": "List files in src/"}')
    const { line, seen } = await rpc.response("r1")
    expect(line).toEqual({ type: "response", command: "prompt", id: "r1", success: true, error: "" })
    // The event right before the response is the whole message, done.
    expect(seen.at(-2)).toEqual({ type: "message", role: "assistant", content: "auth.py main.py", done: true })
    expect(deltas(seen)).toBe("auth.py main.py")
    const sent = plane.llm.requests.at(-1)?.body as { messages: { role: string; content: unknown }[] }
    expect(JSON.stringify(sent.messages.at(-1))).toContain("List files in src/")
    expect(await rpc.end()).toBe(0)
    expect(rpc.stderr()).toBe("")
  }, 60_000)

  test("the model's control characters travel as JSON escapes, exactly, and never raw on stdout", async () => {
    const hostile = "ok \x1b]0;owned\x07\x1b[2J\u202e\x9b2J done"
    plane.llm.script({ text: [hostile] })
    await using rpc = startRpc(plane.env)
    rpc.send({ type: "prompt", id: "h", message: "Say something odd" })
    const { seen } = await rpc.response("h")
    expect(seen.at(-2)).toMatchObject({ type: "message", content: hostile, done: true })
    expect(await rpc.end()).toBe(0)
    expect(rpc.raw()).toContain("\\u001b]0;owned\\u0007")
    expect(firstControl(rpc.raw())).toBeNull()
  }, 60_000)

  test("the same exchange over a model speaking OpenAI's Chat Completions", async () => {
    await using openai = await startChatPlane({ provider: "openai" })
    openai.llm.script({ text: "auth.py main.py" })
    await using rpc = startRpc(openai.env)
    rpc.send('{"type": "prompt", "id": "r1", "message": "List files in src/"}')
    const { line, seen } = await rpc.response("r1")
    expect(line).toEqual({ type: "response", command: "prompt", id: "r1", success: true, error: "" })
    expect(seen.at(-2)).toEqual({ type: "message", role: "assistant", content: "auth.py main.py", done: true })
    expect(openai.llm.requests.at(-1)?.path).toBe("/v1/chat/completions")
    expect(await rpc.end()).toBe(0)
  }, 60_000)

  test("every command type, a cancel mid-stream, a steer mid-turn, an approval, bad lines, EOF", async () => {
    const before = await chatIds(plane.cp)
    await using rpc = startRpc(plane.env, ["--node", "web-1"])

    // get_state on a fresh chat: the state, then the response.
    rpc.send({ type: "get_state", id: "s0" })
    const s0 = await rpc.response("s0")
    const state0 = s0.seen.find((l) => l.type === "state")
    expect(state0).toMatchObject({ type: "state", id: "s0", model: TEST_MODEL, messages: [] })
    expect(state0?.context).toEqual({ node_id: "web-1", incident_id: null })
    const chatId = state0?.chat_id as number
    expect(await chatIds(plane.cp)).toContain(chatId)

    // set_model: only to a model [ai] allows; the next model call asks for the new model.
    rpc.send({ type: "set_model", id: "m0", model: "o1-pro" })
    const refused = (await rpc.response("m0")).line
    expect(refused).toMatchObject({ command: "set_model", success: false })
    expect(String(refused.error)).toContain("scripted-model-2")
    expect(String(refused.error)).toContain("(VALIDATION_FAILED)")
    rpc.send({ type: "set_model", id: "m1", model: "scripted-model-2" })
    expect((await rpc.response("m1")).line).toMatchObject({ command: "set_model", success: true, error: "" })
    plane.llm.script({ text: "Two models." })
    rpc.send({ type: "prompt", id: 1, message: "Which model are you?" })
    expect((await rpc.response(1)).line.success).toBe(true)
    expect(plane.llm.requests.at(-1)?.body.model).toBe("scripted-model-2")

    // cancel mid-stream: text arrives, the model keeps the stream open, cancel ends the turn.
    plane.llm.script({ text: "Looking at web-1 now", hang: "after-text" })
    rpc.send({ type: "prompt", id: "p2", message: "Look at web-1" })
    await rpc.next((l) => l.type === "message" && l.done === false, "the first streamed delta")
    rpc.send({ type: "cancel", id: "c2" })
    const cancelled = await rpc.response("p2")
    // The cancel's own response may come before or after the turn's end: both are answers.
    const c2 = cancelled.seen.find((l) => l.type === "response" && l.id === "c2") ?? (await rpc.response("c2")).line
    expect(c2).toMatchObject({ command: "cancel", success: true, error: "" })
    expect(cancelled.line).toEqual({
      type: "response",
      command: "prompt",
      id: "p2",
      success: false,
      error: "cancelled",
    })
    expect(messages(cancelled.seen).at(-1)).toMatchObject({ done: true, content: "Looking at web-1 now" })

    // steer mid-turn: the model call is held at the gate while the steer lands; the next call reads it.
    plane.gate.shut()
    plane.llm.script({ text: "Listing.", toolCalls: [{ name: "list_nodes", args: {} }] }, { text: "web-1 only." })
    rpc.send({ type: "prompt", id: "p3", message: "List the nodes" })
    await waitFor(
      "the model call to wait at the gate",
      async () => plane.gate.waiting(),
      (n) => n === 1,
    )
    rpc.send({ type: "get_state", id: "s3" })
    expect((await rpc.response("s3")).seen.find((l) => l.type === "state")?.turn_running).toBe(true)
    rpc.send({ type: "steer", id: "st3", message: "Only count healthy ones" })
    expect((await rpc.response("st3")).line).toMatchObject({
      command: "steer",
      success: true,
      data: { queued_behind: "turn", question_id: null },
    })
    plane.gate.open()
    const steered = await rpc.response("p3")
    expect(steered.line.success).toBe(true)
    const tool = steered.seen.filter((l) => l.type === "tool_execution")
    expect(tool.map((t) => t.status)).toEqual(["started", "succeeded"])
    expect(tool[0]).toMatchObject({ tool_name: "list_nodes", tool_args: {} })
    expect(JSON.stringify(plane.llm.requests.at(-1)?.body.messages)).toContain("Only count healthy ones")
    expect(messages(steered.seen).at(-1)).toMatchObject({ done: true, content: "Listing.web-1 only." })

    // A question: the assistant proposes to change web-1; nothing changes until the answer.
    plane.llm.script({ toolCalls: [{ name: "set_desired_closure", args: { node_id: "web-1", closure: CLOSURE } }] })
    rpc.send({ type: "prompt", id: "p4", message: "Pin web-1 to system 2" })
    const asked = await rpc.response("p4")
    expect(asked.line.success).toBe(true)
    const question = asked.seen.find((l) => l.type === "question")
    expect(question).toMatchObject({ question_type: "confirmation", confirmation_type: "approve_reject" })
    expect(String(question?.context)).toContain(CLOSURE)
    const desired = async () => JSON.stringify(await (await plane.cp.api("/api/nodes/web-1")).json())
    expect(await desired()).not.toContain(CLOSURE)
    plane.llm.script({ text: "web-1 now wants system 2." })
    rpc.send({ type: "answer", id: "a4", positive: true })
    const answered = await rpc.response("a4")
    expect(answered.line).toMatchObject({ command: "answer", success: true, error: "" })
    expect(answered.seen.some((l) => l.type === "tool_execution" && l.status === "succeeded")).toBe(true)
    expect(messages(answered.seen).at(-1)).toMatchObject({ done: true, content: "web-1 now wants system 2." })
    expect(await desired()).toContain(CLOSURE)
    // An answer with nothing pending is refused with the reason.
    rpc.send({ type: "answer", id: "a5", positive: true, question_id: Number(question?.question_id) })
    const a5 = (await rpc.response("a5")).line
    expect(a5).toMatchObject({ success: false })
    expect(String(a5.error)).toContain("QUESTION_INVALID")

    // compact: the older turns become one summary the model wrote.
    plane.llm.script({ text: "Summary: web-1 was pinned to system 2." })
    rpc.send({ type: "compact", id: "k1" })
    const compacted = await rpc.response("k1")
    expect(compacted.line).toMatchObject({ command: "compact", success: true, error: "" })
    expect(Number((compacted.line.data as { summarised_messages: number }).summarised_messages)).toBeGreaterThan(0)
    rpc.send({ type: "get_state", id: "s5" })
    const state5 = (await rpc.response("s5")).seen.find((l) => l.type === "state")
    expect(JSON.stringify(state5?.messages)).toContain("Summary: web-1 was pinned to system 2.")
    expect(state5?.model).toBe("scripted-model-2")

    // 1,000 bad lines, generated: each gets an error response naming its line, in order.
    const bad = fc.sample(badLine(), { numRuns: 1000, seed: 4 })
    const firstLine = rpc.sent + 1
    expect(rpc.lines.filter((l) => l.type === "response").length).toBe(rpc.sent)
    for (const line of bad) rpc.send(line)
    const errors: RpcLine[] = []
    for (let i = 0; i < bad.length; i++)
      errors.push((await rpc.next((l) => l.type === "response", `the error for bad line ${i + 1}`)).line)
    errors.forEach((e, i) => {
      expect({ line: bad[i]?.slice(0, 200), success: e.success }).toEqual({
        line: bad[i]?.slice(0, 200),
        success: false,
      })
      expect(String(e.error)).toStartWith(`line ${firstLine + i}: `)
    })

    // And the session still works.
    plane.llm.script({ text: "Still here." })
    rpc.send({ type: "prompt", id: "after", message: "Are you there?" })
    const after = await rpc.response("after")
    expect(after.line.success).toBe(true)
    expect(messages(after.seen).at(-1)?.content).toBe("Still here.")

    expect(await rpc.end()).toBe(0)
    expect(await chatIds(plane.cp)).toEqual(before)
  }, 180_000)
})

/** A line that is no command, by construction: each kind breaks a different rule of the protocol. */
function badLine(): fc.Arbitrary<string> {
  const notJson = fc.string({ minLength: 1, maxLength: 80 }).filter((s) => {
    if (s.trim() === "" || /[\r\n]/.test(s)) return false
    try {
      JSON.parse(s)
      return false
    } catch {
      return true
    }
  })
  const notObject = fc
    .oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer()), fc.string())
    .map((v) => JSON.stringify(v))
  const unknownType = fc
    .string({ minLength: 1, maxLength: 20 })
    .filter((t) => !["prompt", "steer", "cancel", "get_state", "compact", "set_model", "answer"].includes(t))
    .map((type) => JSON.stringify({ type, id: "x" }))
  const noType = fc.dictionary(fc.constantFrom("id", "message", "model"), fc.string()).map((o) => JSON.stringify(o))
  const extraField = fc
    .tuple(fc.constantFrom("cancel", "get_state", "compact"), fc.string({ minLength: 1, maxLength: 10 }))
    .filter(([, k]) => k !== "type" && k !== "id")
    .map(([type, key]) => JSON.stringify({ type, [key]: 1 }))
  const badMessage = fc
    .tuple(fc.constantFrom("prompt", "steer"), fc.oneof(fc.integer(), fc.boolean(), fc.constant(""), fc.constant(null)))
    .map(([type, message]) => JSON.stringify({ type, message }))
  const noMessage = fc.constantFrom("prompt", "steer").map((type) => JSON.stringify({ type, id: 1 }))
  const badModel = fc
    .oneof(fc.constant(""), fc.constant("has space"), fc.integer())
    .map((model) => JSON.stringify({ type: "set_model", model }))
  const badAnswer = fc
    .oneof(fc.constant(undefined), fc.string(), fc.integer())
    .map((positive) => JSON.stringify({ type: "answer", positive }))
  const oversized = fc.constant(JSON.stringify({ type: "prompt", message: "x".repeat(300_000) }))
  return fc.oneof(
    { arbitrary: notJson, weight: 4 },
    { arbitrary: notObject, weight: 2 },
    { arbitrary: unknownType, weight: 2 },
    { arbitrary: noType, weight: 1 },
    { arbitrary: extraField, weight: 1 },
    { arbitrary: badMessage, weight: 1 },
    { arbitrary: noMessage, weight: 1 },
    { arbitrary: badModel, weight: 1 },
    { arbitrary: badAnswer, weight: 1 },
    { arbitrary: oversized, weight: 1 },
  )
}
