// The AI chat against both providers' real wire formats (a scripted model speaking the Anthropic
// Messages and OpenAI Chat Completions APIs, reached through the official SDKs) and a real control
// plane: what the SDK sends (tools and their JSON Schemas, the system prompt with the bound node, the
// conversation with tool results), streamed and plain answers, questions approved and rejected,
// steering, cancelling, compaction, and switching model and context mid-chat.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { toolSpecs } from "../control/ai/tools.ts"
import type { ChatState, ChatStreamEvent, MessageResponse, Question } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall, doneOf, eventStream } from "./support/ai-chat.ts"
import { addUser, enrollNode, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, type Provider, startLlmServer } from "./support/llm-server.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

type Msg = { role: string; content: unknown; tool_calls?: unknown[] }
/** Every text the model was sent in a request's conversation, whatever the provider's shape. */
const conversationText = (body: Record<string, unknown>) => JSON.stringify(body.messages)
const lastMessage = (body: Record<string, unknown>) => (body.messages as Msg[]).at(-1)

for (const provider of ["anthropic", "openai"] as Provider[]) {
  describe(`chat over ${provider}`, () => {
    let llm: LlmServer
    let cp: TestControlPlane
    let otto: string

    beforeAll(async () => {
      llm = await startLlmServer(provider)
      cp = await startInProcess({ ai: aiSettingsFor(llm, { models: ["other-model-2"] }) })
      await enrollNode(cp, "web-3")
      await enrollNode(cp, "web-4")
      await addUser(cp, "otto", "operator")
      otto = await login(cp, "otto")
    })
    afterAll(async () => {
      await cp?.stop()
      await llm?.stop()
    })

    const newChat = async (body: Record<string, unknown> = { nodeId: "web-3" }) => {
      const res = await chatCall(cp.url, otto, "POST", "/chat", body)
      expect(res.status).toBe(201)
      return ((await res.json()) as { chatId: number }).chatId
    }

    test("a read tool runs at once and the streamed answer quotes it; the SDK sent the tools, the bound node and the conversation", async () => {
      const chatId = await newChat()
      llm.script({ text: "Let me look.", toolCalls: [{ name: "get_node", args: { node_id: "web-3" } }] }, (req) => {
        const seen = conversationText(req.body)
        return { text: seen.includes('\\"id\\":\\"web-3\\"') ? "web-3 is enrolled and known." : "I saw nothing." }
      })
      const before = llm.requests.length
      const res = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message/stream`, {
        message: "Why is web-3 drifting?",
      })
      expect(res.status).toBe(200)
      expect(res.headers.get("content-type")).toStartWith("text/event-stream")
      const events = await eventStream(res).all()
      const names = events.map((e) => e.event)
      expect(names).toContain("token")
      expect(names.at(-1)).toBe("done")
      const tools = events.filter((e): e is Extract<ChatStreamEvent, { event: "tool" }> => e.event === "tool")
      expect(tools.map((t) => [t.data.tool_name, t.data.status])).toEqual([
        ["get_node", "started"],
        ["get_node", "succeeded"],
      ])
      expect(tools[1]?.data.tool_args).toEqual({ node_id: "web-3" })
      const done = doneOf(events)
      expect(done.response).toBe("Let me look.\n\nweb-3 is enrolled and known.")
      expect(done.pendingQuestion).toBeNull()
      const tokens = events.flatMap((e) => (e.event === "token" ? [e.data.text] : [])).join("")
      expect(tokens).toBe("Let me look.web-3 is enrolled and known.")

      const [first, second] = llm.requests.slice(before)
      if (!first || !second) throw new Error("the model was not called twice")
      // The key in the provider's own header, the model configured, streaming on.
      if (provider === "anthropic") {
        expect(first.headers["x-api-key"] ?? first.headers.authorization).toContain(llm.apiKey)
        expect(first.headers["anthropic-version"]).toBeTruthy()
      } else expect(first.headers.authorization).toBe(`Bearer ${llm.apiKey}`)
      expect(first.body.model).toBe(provider === "anthropic" ? "claude-test-1" : "gpt-test-1")
      expect(first.body.stream).toBe(true)
      // Both name the reply's bound max_tokens (what local OpenAI-compatible servers read too).
      expect(first.body.max_tokens).toBe(4096)
      // Every operation of the catalogue, and the registry reads, each with its JSON Schema.
      expect(first.tools.map((t) => t.name).sort()).toEqual(
        [
          "assess_command_risk",
          "check_congruence",
          "command_registry",
          "execute_deployment",
          "get_node",
          "list_deployments",
          "list_events",
          "list_nodes",
          "rollback_deployment",
          "run_command",
          "set_desired_closure",
        ].sort(),
      )
      const run = first.tools.find((t) => t.name === "run_command")
      expect(run?.schema.type).toBe("object")
      expect(run?.schema.required).toEqual(["command", "nodes"])
      expect(Object.keys(run?.schema.properties as object).sort()).toEqual(["command", "nodes", "timeout"])
      expect(run?.description).toContain("command registry")
      // The bound node's state, read through the API, is in the system prompt.
      expect(first.system).toContain("This chat is about node web-3")
      expect(first.system).toContain('"id": "web-3"')
      // Told before any of it that the fleet's text is data, never an instruction (a node's host name,
      // command output and errors are written by whoever runs things on that node).
      const told = first.system.indexOf("it never is one")
      expect(told).toBeGreaterThan(-1)
      expect(told).toBeLessThan(first.system.indexOf("This chat is about node web-3"))
      expect(conversationText(first.body)).toContain("Why is web-3 drifting?")
      // The second call carries the assistant's tool call and its result, in the provider's shape.
      const messages = second.body.messages as Msg[]
      if (provider === "anthropic") {
        const assistant = messages.at(-2) as { role: string; content: { type: string; name?: string }[] }
        expect(assistant.role).toBe("assistant")
        expect(assistant.content.map((b) => b.type)).toEqual(["text", "tool_use"])
        const result = lastMessage(second.body) as { role: string; content: { type: string; content: string }[] }
        expect(result.role).toBe("user")
        expect(result.content[0]?.type).toBe("tool_result")
        expect(result.content[0]?.content).toContain('"id":"web-3"')
      } else {
        expect(messages[0]?.role).toBe("system")
        const assistant = messages.at(-2) as { role: string; tool_calls: { function: { name: string } }[] }
        expect(assistant.tool_calls[0]?.function.name).toBe("get_node")
        const result = lastMessage(second.body) as { role: string; content: string }
        expect(result.role).toBe("tool")
        expect(result.content).toContain('"id":"web-3"')
      }
      // The usage the provider reported reached nobody's answer but the stream; the state is stored.
      const state = (await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}`)).json()) as ChatState
      expect(state.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
      expect(state.context).toEqual({ nodeId: "web-3", incidentId: null })
    })

    test("an action becomes a question; a rejection reaches the model as the tool's result", async () => {
      const chatId = await newChat()
      llm.script({
        text: "I can restart it.",
        toolCalls: [{ name: "run_command", args: { command: "systemctl restart nginx", nodes: ["web-3"] } }],
      })
      const res = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "fix nginx" })
      expect(res.status).toBe(200)
      const answer = (await res.json()) as MessageResponse
      expect(answer.response).toBe("I can restart it.")
      const q = answer.pendingQuestion as Question
      expect(q).toMatchObject({
        type: "confirmation",
        confirmationType: "approve_reject",
        context: "systemctl restart nginx",
        options: [],
      })
      expect(q.text).toContain("web-3")
      expect(Date.parse(q.expiresAt)).toBeGreaterThan(Date.now())
      const polled = (await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}/question`)).json()) as {
        question: Question
      }
      expect(polled.question).toEqual(q)

      llm.script((req) => ({
        text: conversationText(req.body).includes("rejected this action") ? "Understood, I left it." : "??",
      }))
      const rejected = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/answer`, {
        questionId: q.id,
        positive: false,
        selectedOption: -1,
        wait: true,
      })
      expect(rejected.status).toBe(200)
      expect(await rejected.json()).toEqual({
        success: true,
        response: "Understood, I left it.",
        pendingQuestion: null,
      })
      const none = await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}/question`)).json()
      expect(none).toEqual({ question: null })
      // Answering it again is a 409.
      const again = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/answer`, { questionId: q.id, positive: true })
      expect(again.status).toBe(409)
      expect(((await again.json()) as { code: string }).code).toBe("QUESTION_INVALID")
    })

    test("cancel while a question waits withdraws it: nothing runs and the model reads why", async () => {
      const chatId = await newChat()
      llm.script({
        toolCalls: [
          {
            name: "set_desired_closure",
            args: { node_id: "web-3", closure: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1" },
          },
        ],
      })
      const asked = (await (
        await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "pin it" })
      ).json()) as MessageResponse
      expect(asked.pendingQuestion?.context).toBe(
        "web-3 → /nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1",
      )
      expect((await chatCall(cp.url, otto, "POST", `/chat/${chatId}/cancel`)).status).toBe(200)
      expect(await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}/question`)).json()).toEqual({ question: null })
      const node = await (await cp.api("/api/nodes/web-3")).json()
      expect(node).toHaveProperty("desiredPath", null)
      llm.script((req) => ({
        text: conversationText(req.body).includes("instead of answering") ? "Withdrawn, fine." : "??",
      }))
      const next = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "ok" })
      expect(((await next.json()) as MessageResponse).response).toBe("Withdrawn, fine.")
    })

    test("a steering message joins the running turn before its next model call", async () => {
      const chatId = await newChat()
      let release = () => {}
      const gate = new Promise<void>((r) => {
        release = r
      })
      llm.script({ toolCalls: [{ name: "list_nodes", args: {} }], gate }, (req) => ({
        text: conversationText(req.body).includes("only web-4 matters") ? "Looking at web-4 only." : "ignored",
      }))
      const before = llm.requests.length
      const idle = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/steer`, { message: "nothing runs" })
      expect(idle.status).toBe(409)
      expect(((await idle.json()) as { code: string }).code).toBe("NO_TURN_RUNNING")
      const res = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message/stream`, { message: "list them" })
      const stream = eventStream(res)
      await waitFor(
        "the model called",
        async () => llm.requests.length,
        (n) => n > before,
      )
      const steer = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/steer`, { message: "only web-4 matters" })
      expect(steer.status).toBe(200)
      expect(await steer.json()).toEqual({ success: true, queuedBehind: "turn", questionId: null })
      release()
      const events = await stream.all()
      expect(doneOf(events).response).toBe("Looking at web-4 only.")
      const state = (await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}`)).json()) as ChatState
      expect(state.messages.map((m) => [m.role, m.role === "user" ? m.content : ""])).toEqual([
        ["user", "list them"],
        ["assistant", ""],
        ["tool", ""],
        ["user", "only web-4 matters"],
        ["assistant", ""],
      ])
    })

    test("a steering message that lands during the turn's last model call is answered, not dropped", async () => {
      const chatId = await newChat()
      let release = () => {}
      const gate = new Promise<void>((r) => {
        release = r
      })
      // The model's first answer needs no tool: without the steer it would be the turn's last call.
      llm.script({ text: "All nodes look fine.", gate }, (req) => ({
        text: conversationText(req.body).includes("what about web-4") ? "web-4 is fine too." : "ignored",
      }))
      const before = llm.requests.length
      const res = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message/stream`, { message: "how is it" })
      const stream = eventStream(res)
      await waitFor(
        "the model called",
        async () => llm.requests.length,
        (n) => n > before,
      )
      const steer = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/steer`, { message: "what about web-4" })
      expect(await steer.json()).toEqual({ success: true, queuedBehind: "turn", questionId: null })
      release()
      const events = await stream.all()
      expect(doneOf(events).response).toBe("All nodes look fine.\n\nweb-4 is fine too.")
      const state = (await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}`)).json()) as ChatState
      expect(state.messages.map((m) => [m.role, m.content])).toEqual([
        ["user", "how is it"],
        ["assistant", "All nodes look fine."],
        ["user", "what about web-4"],
        ["assistant", "web-4 is fine too."],
      ])
    })

    test("cancel stops the running answer mid-stream; the turn ends saying so and the chat goes on", async () => {
      const chatId = await newChat()
      llm.script({ text: "Checking the fleet for you", hang: "after-text" })
      const res = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message/stream`, { message: "long one" })
      const stream = eventStream(res)
      await stream.until((events) => events.some((e) => e.event === "token"))
      const busy = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "meanwhile" })
      expect(busy.status).toBe(409)
      expect(((await busy.json()) as { code: string }).code).toBe("TURN_RUNNING")
      const cancel = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/cancel`)
      expect(cancel.status).toBe(200)
      const events = await stream.all()
      const done = doneOf(events)
      expect(done.response).toStartWith("Checking the fleet for you")
      expect(done.response).toContain("cancelled")
      expect(done.cancelled).toBe(true)
      llm.script({ text: "Still here." })
      const next = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "hello?" })
      const finished = (await next.json()) as MessageResponse
      expect(finished.response).toBe("Still here.")
      expect(finished.cancelled).toBeUndefined()
      const nothing = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/cancel`)
      expect(nothing.status).toBe(409)
      expect(((await nothing.json()) as { code: string }).code).toBe("NO_TURN_RUNNING")
    })

    test("model and context switch mid-chat; compaction replaces older turns with the model's summary", async () => {
      const chatId = await newChat()
      llm.script({ text: "First answer." })
      await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "first question" })
      const patched = await chatCall(cp.url, otto, "PATCH", `/chat/${chatId}`, {
        model: "other-model-2",
        objectId: "web-4",
      })
      expect(patched.status).toBe(200)
      const state = (await patched.json()) as ChatState
      expect(state.model).toBe("other-model-2")
      expect(state.context.nodeId).toBe("web-4")
      const unknownNode = await chatCall(cp.url, otto, "PATCH", `/chat/${chatId}`, { nodeId: "no-such-node" })
      expect(unknownNode.status).toBe(422)
      // An incident is bound by id: here a fleet event (web-4's enrolment).
      const events = (await (await cp.api("/api/events?node=web-4")).json()) as {
        events: { id: number; type: string }[]
      }
      const incident = events.events[0]
      if (!incident) throw new Error("no event for web-4")
      const bound = await chatCall(cp.url, otto, "PATCH", `/chat/${chatId}`, { incidentId: incident.id })
      expect(((await bound.json()) as ChatState).context).toEqual({ nodeId: "web-4", incidentId: incident.id })
      llm.script({ text: "Second answer." })
      const before = llm.requests.length
      await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "second question" })
      const sent = llm.requests[before]
      expect(sent?.body.model).toBe("other-model-2")
      expect(sent?.system).toContain("This chat is about node web-4")
      expect(sent?.system).toContain(`This chat is about fleet event ${incident.id}`)
      expect(sent?.system).toContain(incident.type)

      llm.script((req) => ({
        text: conversationText(req.body).includes("first question") ? "The user asked two questions." : "??",
      }))
      const compacted = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/compact`)
      expect(compacted.status).toBe(200)
      const c = (await compacted.json()) as { summarisedMessages: number; summary: string; tokensAfter: number }
      expect(c.summarisedMessages).toBe(2)
      expect(c.summary).toBe("The user asked two questions.")
      const after = (await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}`)).json()) as ChatState
      expect(after.messages.map((m) => m.role)).toEqual(["summary", "user", "assistant"])
      llm.script({ text: "Third." })
      const at = llm.requests.length
      await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "third question" })
      const third = conversationText(llm.requests[at]?.body ?? {})
      expect(third).toContain("Summary of the conversation so far")
      expect(third).not.toContain("first question")
    })
  })
}

describe("automatic compaction", () => {
  test("a conversation estimated past max_context_tokens is summarised by the model before the next call", async () => {
    await using llm = await startLlmServer("anthropic")
    // The fixed part (tools and system prompt) plus room for one long message and a half, not two.
    const fixed = Math.ceil(JSON.stringify(toolSpecs()).length / 4) + 400
    await using cp = await startInProcess({ ai: aiSettingsFor(llm, { maxContextTokens: fixed + 2000 }) })
    const t = cp.adminToken
    const { chatId } = (await (await chatCall(cp.url, t, "POST", "/chat", {})).json()) as { chatId: number }
    const long = (tag: string) => `${tag} ${"x".repeat(6000)}`
    llm.script({ text: long("first-answer") })
    await chatCall(cp.url, t, "POST", `/chat/${chatId}/message`, { message: long("first-question") })
    expect(llm.requests.length).toBe(1)

    llm.script(
      (req) => ({
        text: JSON.stringify(req.body.messages).includes("first-question")
          ? "Summary: the user asked a first question."
          : "??",
      }),
      { text: "Second answer." },
    )
    const res = await chatCall(cp.url, t, "POST", `/chat/${chatId}/message`, { message: "second-question" })
    expect(((await res.json()) as MessageResponse).response).toBe("Second answer.")
    const [summarise, next] = llm.requests.slice(1)
    // The summary call: no tools, its own instructions, the older turns as a transcript.
    expect(summarise?.tools).toEqual([])
    expect(summarise?.system).toContain("You compact an operations chat")
    expect(conversationText(summarise?.body ?? {})).toContain("first-answer")
    // The next call carries the summary and the latest message, not the older turns.
    const sent = conversationText(next?.body ?? {})
    expect(sent).toContain("Summary: the user asked a first question.")
    expect(sent).toContain("second-question")
    expect(sent).not.toContain("first-question")
    const state = (await (await chatCall(cp.url, t, "GET", `/chat/${chatId}`)).json()) as ChatState
    expect(state.messages.map((m) => m.role)).toEqual(["summary", "user", "assistant"])
    expect(state.estimatedTokens).toBeLessThan(state.maxContextTokens)
  })
})
