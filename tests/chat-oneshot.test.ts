// `chimera chat` without a terminal, against a real control plane and the scripted model: `-q` prints
// one rendered answer in plain text (no colour, nothing redrawn, the model's control characters
// escaped), `--json` prints the exchange as JSON; a proposal nobody can approve is shown and not run
// (exit 2); a piped conversation answers a proposal with its next line; the `chimera login` session is
// the credential when there is no other, and a refused one says what to do; a control plane without
// a model makes both `chimera chat` and `chimera code --mode rpc` say how to configure `[ai]` in one
// line. Every chat is deleted at the end.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { addUser, enrollNode, PASSWORD } from "./support/auth.ts"
import { type ChatPlane, chatIds, startChatPlane } from "./support/chat-plane.ts"
import { freePort, startInProcess } from "./support/control-plane.ts"
import { healFailed, simAgent } from "./support/sim-agent.ts"
import { firstControl } from "./support/terminal.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const CLOSURE = "/nix/store/0c5k6m3hq9x1w2b4v7n8p0r1s2d3f4g5-chimera-test-system-2"
let plane: ChatPlane

beforeAll(async () => {
  plane = await startChatPlane({ models: ["other-model"] })
  await enrollNode(plane.cp, "web-1")
})
afterAll(async () => {
  await plane?.[Symbol.asyncDispose]()
})

const chat = (args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) =>
  run([process.execPath, MAIN, "chat", ...args], { env: { ...plane.env, ...opts.env }, stdin: opts.stdin })
const desired = async () => JSON.stringify(await (await plane.cp.api("/api/nodes/web-1")).json())

describe("chimera chat -q, --json and pipes", () => {
  test("-q prints the answer rendered as plain text, control characters escaped", async () => {
    plane.llm.script({
      text: "## Fleet\n\n| Node | Status |\n|---|---|\n| web-1 | **ok** |\n\nAll \x1b]0;owned\x07 fine.\n\nYou> approve all\n",
    })
    const r = await chat(["-q", "How is the fleet?", "--node", "web-1"])
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" })
    expect(firstControl(r.stdout)).toBeNull()
    expect(r.stdout).toContain("Chimera> Fleet")
    expect(r.stdout).toMatch(/│ web-1 │ ok\s+│/)
    expect(r.stdout).toContain("All \\x1b]0;owned\\x07 fine.")
    expect(r.stdout).not.toContain("**")
    // The model cannot write at the left margin, where the person's prompt and the CLI's lines are.
    expect(r.stdout).toContain("         You> approve all")
    const margin = r.stdout.split("\n").filter((l) => l !== "" && !l.startsWith("Chimera> ") && !l.startsWith(" "))
    expect(margin).toEqual([])
    expect(await chatIds(plane.cp)).toEqual([])
  }, 60_000)

  test("--json prints the exchange: the answer, the tools it ran", async () => {
    plane.llm.script({ text: "Checking.", toolCalls: [{ name: "list_nodes", args: {} }] }, { text: "One node: web-1." })
    const r = await chat(["-q", "List the nodes", "--json"])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as Record<string, unknown>
    expect(out).toMatchObject({
      response: "Checking.One node: web-1.",
      pendingQuestion: null,
      cancelled: false,
      error: null,
    })
    expect(out.chatId).toBeNumber()
    expect((out.tools as { tool_name: string; status: string }[]).map((t) => [t.tool_name, t.status])).toEqual([
      ["list_nodes", "started"],
      ["list_nodes", "succeeded"],
    ])
    expect(await chatIds(plane.cp)).toEqual([])
  }, 60_000)

  test("a proposal with nobody to approve it is shown, not run, and the exit status says so", async () => {
    const propose = { toolCalls: [{ name: "set_desired_closure", args: { node_id: "web-1", closure: CLOSURE } }] }
    plane.llm.script(propose)
    const r = await chat(["-q", "Pin web-1 to system 2"])
    expect(r.code).toBe(2)
    expect(r.stdout).toContain(CLOSURE)
    // Nothing waits once the one-question chat is deleted: the line says so and where to approve.
    expect(r.stdout).toContain(
      "not approved: no terminal to ask on, so it was not run and this one-question chat is deleted; ask in `chimera chat`",
    )
    plane.llm.script(propose)
    const j = await chat(["-q", "Pin web-1 to system 2", "--json"])
    expect(j.code).toBe(2)
    expect((JSON.parse(j.stdout) as { pendingQuestion: { context: string } }).pendingQuestion.context).toContain(
      CLOSURE,
    )
    expect(await desired()).not.toContain(CLOSURE)
    expect(await chatIds(plane.cp)).toEqual([])
  }, 60_000)

  test("a piped conversation: one message a line, a proposal answered by the next line, slash commands", async () => {
    plane.llm.script(
      { text: "Hello." },
      { toolCalls: [{ name: "set_desired_closure", args: { node_id: "web-1", closure: CLOSURE } }] },
      { text: "Pinned." },
    )
    const r = await chat(["--node", "web-1"], { stdin: "Hi\nPin web-1 to system 2\nyes\n/status\n" })
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" })
    expect(firstControl(r.stdout)).toBeNull()
    expect(r.stdout).toContain("You> Hi\nChimera> Hello.")
    expect(r.stdout).toContain("answer (Approve/Reject)> yes")
    expect(r.stdout).toContain("Pinned.")
    expect(r.stdout).toMatch(/context\s+node web-1/)
    expect(r.stdout).toMatch(/Chat \d+ ended\./)
    expect(await desired()).toContain(CLOSURE)
    expect(await chatIds(plane.cp)).toEqual([])
  }, 60_000)

  test("a message the control plane refuses is said with its status and code, as every command's refusals", async () => {
    // Longer than a chat message may be: the control plane answers 422 before the model hears of it.
    const r = await chat(["--node", "web-1"], { stdin: `${"x".repeat(40_000)}\n` })
    expect(r.stdout.split("\n").find((line) => line.startsWith("! "))).toEndWith(" (422 VALIDATION_FAILED)")
    expect(await chatIds(plane.cp)).toEqual([])
  }, 60_000)

  test("the `chimera login` session is used when it is the only credential; a refused one says what to do", async () => {
    await addUser(plane.cp, "alice", "operator")
    const env = { CHIMERA_TOKEN: "", CHIMERA_DATA_DIR: join(plane.home, "empty") }
    const login = await run([process.execPath, MAIN, "login", "alice", "--password-stdin"], {
      env: { ...plane.env, ...env },
      stdin: `${PASSWORD}\n`,
    })
    expect(login.code).toBe(0)
    plane.llm.script({ text: "Hello alice." })
    const r = await chat(["-q", "Who am I?", "--json"], { env })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).response).toBe("Hello alice.")
    const refused = await chat(["-q", "Hi"], { env: { CHIMERA_TOKEN: "not-a-token-at-all-xxxxxxxx" } })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("401 AUTH_FAILED")
    expect(refused.stderr).toContain("chimera login")
  }, 60_000)

  test("--incident and --model bind the chat: the model hears of the incident, under the model asked for", async () => {
    const events = (await (await plane.cp.api("/api/events")).json()) as { events: { id: number; type: string }[] }
    const incident = events.events[0]?.id as number
    expect(incident).toBeNumber()
    plane.llm.script({ text: "Looked." })
    const r = await chat(["-q", "What happened?", "--incident", String(incident), "--model", "other-model", "--json"])
    expect(r.code).toBe(0)
    const sent = plane.llm.requests.at(-1)
    expect(sent?.body.model).toBe("other-model")
    // The system prompt names the event and carries what it says.
    expect(sent?.system).toMatch(new RegExp(`event ${incident}\\b`))
    expect(sent?.system).toContain(events.events[0]?.type as string)
  }, 60_000)

  test("--incident takes an incident's UUID from `chimera incidents`: the model reads that incident", async () => {
    const node = await simAgent(plane.cp, "web-9")
    await node.report(healFailed())
    const listed = await waitFor(
      "the heal failure's incident",
      async () =>
        ((await (await plane.cp.api("/api/incidents?node=web-9")).json()) as { incidents: { id: string }[] }).incidents,
      (is) => is.length === 1,
    )
    const id = listed[0]?.id as string
    plane.llm.script({ text: "Looked." })
    const r = await chat(["-q", "What happened?", "--incident", id, "--json"])
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" })
    const sent = plane.llm.requests.at(-1)
    expect(sent?.system).toContain(`This chat is about incident ${id}:`)
    expect(sent?.system).toContain("heal-failed")
  }, 60_000)

  test("bad flags are refused in words, with EX_USAGE (64) as every command's usage mistakes", async () => {
    for (const [args, says] of [
      [["--node", "web 1", "-q", "x"], "--node: expected a node id"],
      [["--incident", "abc", "-q", "x"], "--incident: expected an incident's id, as `chimera incidents` lists it"],
      [["--json"], "--json goes with -q QUESTION"],
    ] as const) {
      const r = await chat([...args])
      expect({ args, code: r.code }).toEqual({ args, code: 64 })
      expect(r.stderr).toContain(says)
    }
  }, 60_000)
})

describe("a control plane whose model cannot be reached", () => {
  test("chat says what the provider answered, not that [ai] is missing", async () => {
    await using cp = await startInProcess({
      ai: {
        provider: "openai",
        model: "llama3",
        models: [],
        baseUrl: `http://127.0.0.1:${freePort()}/v1`,
        apiKey: "",
        timeoutMs: 30_000,
        questionTtlSeconds: 300,
        maxContextTokens: 100_000,
        turnLeaseSeconds: 30,
      },
    })
    const env = { ...plane.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken }
    const r = await run([process.execPath, MAIN, "chat", "-q", "hi"], { env })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("could not be used")
    expect(r.stderr).not.toContain("no AI provider configured")
  }, 60_000)
})

describe("a control plane without a model", () => {
  test("chat and code --mode rpc say how to configure [ai], in one line, exit 1", async () => {
    await using cp = await startInProcess()
    const env = { ...plane.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken }
    const r = await run([process.execPath, MAIN, "chat", "-q", "hi"], { env })
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split("\n")).toHaveLength(1)
    expect(r.stderr).toContain("[ai] section")
    expect(r.stderr).not.toContain("    at ")
    const rpc = await run([process.execPath, MAIN, "code", "--mode", "rpc"], { env, stdin: '{"type":"get_state"}\n' })
    expect(rpc.code).toBe(1)
    const line = JSON.parse(rpc.stdout) as { type: string; code: string; message: string }
    expect(line).toMatchObject({ type: "error", code: "AI_UNAVAILABLE" })
    expect(line.message).toContain("[ai] section")
  }, 60_000)
})
