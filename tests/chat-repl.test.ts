// `chimera chat --node web-1` in a real tmux (colour terminal, fixed size), read with capture-pane,
// against a real control plane whose chat talks to the scripted model: it connects with the CLI's
// credential, renders the streamed markdown (a table drawn while the turn is still streaming), puts
// the assistant's proposal to the keyboard and the approval really changes the node, runs every slash
// command, cancels an answer with Ctrl+C and stays, and Ctrl+D, /exit and /quit each end it with the
// chat deleted on the control plane.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { addUser, call, enrollNode, PASSWORD } from "./support/auth.ts"
import { type ChatPlane, chatIds, startChatPlane } from "./support/chat-plane.ts"
import { killTmuxServer } from "./support/tmux.ts"
import { requireTool, runOk } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const CLOSURE = "/nix/store/0c5k6m3hq9x1w2b4v7n8p0r1s2d3f4g5-chimera-test-system-2"
const socket = `chimera-chat-${process.pid}`
let plane: ChatPlane

beforeAll(async () => {
  requireTool("tmux")
  plane = await startChatPlane()
  for (const id of ["web-1", "web-2"]) await enrollNode(plane.cp, id)
  // A session kept for the whole file: killing the chat's session must not end the tmux server, or
  // the next launch's new-session meets it exiting ("server exited unexpectedly").
  await tmux("-f", "/dev/null", "new-session", "-d", "-s", "keep", "cat")
})
afterAll(async () => {
  await killTmuxServer(socket)
  await plane?.[Symbol.asyncDispose]()
})

const tmux = (...args: string[]) => runOk(["tmux", "-L", socket, ...args])
/** The whole pane, scrollback included, as text (no escape sequences). */
const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "chat")
const keys = (...k: string[]) => tmux("send-keys", "-t", "chat", ...k)
const type = async (text: string) => {
  await keys("-l", text)
  await keys("Enter")
}
const see = (what: string, test: (s: string) => boolean, timeoutMs = 30_000) => waitFor(what, screen, test, timeoutMs)
/** What the latest exchange printed: from the last `You>` line with text on it to the end of the pane. */
function sinceLastPrompt(s: string): string {
  const parts = s.split("You> ")
  if (parts.length > 1 && (parts.at(-1) ?? "").trim() === "") parts.pop()
  return parts.at(-1) ?? ""
}

/** Starts `chimera chat ARGS` in session `chat`, in a shell that says how it exited and stays. */
async function launch(args: string[], env: Record<string, string> = {}) {
  await tmux("kill-session", "-t", "chat").catch(() => {})
  const vars = Object.entries({ ...plane.env, ...env }).map(([k, v]) => `${k}=${v}`)
  const command = ["env", ...vars, process.execPath, MAIN, "chat", ...args].map((a) => `'${a}'`).join(" ")
  await tmux(
    "-f",
    "/dev/null",
    "new-session",
    "-d",
    "-s",
    "chat",
    "-x",
    "110",
    "-y",
    "45",
    `${command}; echo "chat exited $?"; exec cat`,
  )
}

async function startChat(args: string[], env: Record<string, string> = {}, who = "bootstrap admin") {
  await launch(args, env)
  const first = await see("the chat to connect", (s) => s.includes("Type /help") && s.includes("You>"))
  expect(first).toContain(`Connected to ${plane.cp.url} as ${who}`)
  return first
}

async function expectEnded() {
  const end = await see("the chat to end", (s) => s.includes("chat exited"))
  expect(end).toContain("chat exited 0")
  expect(end).toMatch(/Chat \d+ ended\./)
  await tmux("kill-session", "-t", "chat")
  expect(await chatIds(plane.cp)).toEqual([])
}

describe("chimera chat in a terminal", () => {
  test("asks, renders markdown, approves with the keyboard, runs every slash command, cancels, leaves", async () => {
    const start = await startChat(["--node", "web-1"])
    expect(start).toContain("Context: node web-1")
    expect(await chatIds(plane.cp)).toHaveLength(1)

    // Markdown: a heading, bold, a table, a list and code, rendered; none of their markup left.
    plane.llm.script({
      text: [
        "## web-1",
        "",
        "web-1 is **healthy** and `congruent`.",
        "",
        "| Node  | Status  | Drift |",
        "|-------|---------|------:|",
        "| web-1 | healthy |     0 |",
        "",
        "- profile matches",
        "- no reboot needed",
        "",
        "```sh",
        "chimera nodes show web-1",
        "```",
      ].join("\n"),
    })
    await type("How is web-1?")
    const answer = sinceLastPrompt(await see("the rendered answer", (s) => sinceLastPrompt(s).includes("╰─")))
    expect(answer).toContain("Chimera> web-1")
    expect(answer).toContain("web-1 is healthy and congruent.")
    expect(answer).toMatch(/│ Node\s+│ Status\s+│ Drift │/)
    expect(answer).toMatch(/│ web-1 │ healthy │\s+0 │/)
    expect(answer).toContain("• profile matches")
    expect(answer).toContain("│ chimera nodes show web-1")
    for (const markup of ["##", "**", "|---", "```", "- profile"]) expect(answer).not.toContain(markup)
    // What the model was sent: the question, with the chat bound to web-1.
    const sent = JSON.stringify(plane.llm.requests.at(-1)?.body)
    expect(sent).toContain("How is web-1?")
    expect(plane.llm.requests.at(-1)?.system).toContain("web-1")

    // A proposal: nothing changes until a person approves it on the keyboard.
    plane.llm.script(
      { toolCalls: [{ name: "set_desired_closure", args: { node_id: "web-1", closure: CLOSURE } }] },
      { text: "web-1 now wants **system 2**." },
    )
    await type("Pin web-1 to system 2")
    const asked = await see("the approval prompt", (s) => /Approve.*Reject/.test(sinceLastPrompt(s)))
    expect(sinceLastPrompt(asked)).toContain(CLOSURE)
    const desired = async () => JSON.stringify(await (await plane.cp.api("/api/nodes/web-1")).json())
    expect(await desired()).not.toContain(CLOSURE)
    await keys("Left")
    await keys("Enter")
    const approved = await see("the answer after approval", (s) => s.includes("web-1 now wants system 2."))
    expect(sinceLastPrompt(approved)).toMatch(/✓ set_desired_closure/)
    expect(await desired()).toContain(CLOSURE)

    // Slash commands.
    await keys("-l", "/he")
    await keys("Tab")
    await keys("Enter")
    await see("the help", (s) => sinceLastPrompt(s).includes("/incident ID") && sinceLastPrompt(s).includes("/clear"))
    await type("/status")
    const status = sinceLastPrompt(await see("the status", (s) => /context size/.test(sinceLastPrompt(s))))
    const firstChat = (await chatIds(plane.cp))[0]
    expect(status).toMatch(new RegExp(`chat\\s+${firstChat} `))
    expect(status).toMatch(/context\s+node web-1/)
    expect(status).toMatch(/model\s+scripted-model-1 \(anthropic\)/)
    await type("/node web-2")
    await see("the context to switch", (s) => sinceLastPrompt(s).includes("Context: node web-2"))
    await type("/object web-1")
    await see("the context to switch back", (s) => sinceLastPrompt(s).includes("Context: node web-1"))
    const events = (await (await plane.cp.api("/api/events")).json()) as { events: { id: number }[] }
    const incident = events.events[0]?.id
    expect(incident).toBeNumber()
    await type(`/incident ${incident}`)
    await see("the incident context", (s) => sinceLastPrompt(s).includes(`incident ${incident}`))
    await type("/incident web-1")
    await see("a refusal in words", (s) => sinceLastPrompt(s).includes("expected an incident's id"))
    await type("/bogus")
    await see("the unknown command", (s) => sinceLastPrompt(s).includes("unknown command /bogus"))
    await type("/clear")
    await see("a new chat", (s) => /Chat \d+ deleted; new chat \d+/.test(sinceLastPrompt(s)))
    const secondChat = await chatIds(plane.cp)
    expect(secondChat).toHaveLength(1)
    expect(secondChat).not.toContain(firstChat)

    // Ctrl+C while the answer streams: the table is already drawn, the turn is cancelled, the chat stays.
    plane.llm.script({
      text: "| Node | State |\n|------|-------|\n| web-1 | pinned |\n\nStill checking the",
      hang: "after-text",
    })
    await type("Check again")
    const streaming = await see("the table drawn mid-turn", (s) => /│ web-1 │ pinned │/.test(sinceLastPrompt(s)))
    expect(sinceLastPrompt(streaming)).toContain("Still checking the")
    await keys("C-c")
    await see(
      "the cancel and a new prompt",
      (s) => sinceLastPrompt(s).includes("(answer cancelled)") && s.trimEnd().endsWith("You>"),
    )
    plane.llm.script({ text: "Yes, still here." })
    await type("Still there?")
    await see("the chat to go on", (s) => sinceLastPrompt(s).includes("Yes, still here."))

    // Ctrl+C at a proposal withdraws it: nothing runs, the chat goes on.
    const other = CLOSURE.replace("system-2", "system-3")
    plane.llm.script({ toolCalls: [{ name: "set_desired_closure", args: { node_id: "web-1", closure: other } }] })
    await type("Pin web-1 to system 3")
    await see("the second approval prompt", (s) => /Approve.*Reject/.test(sinceLastPrompt(s)))
    await keys("C-c")
    await see(
      "the proposal withdrawn",
      (s) => sinceLastPrompt(s).includes("(answer cancelled)") && s.trimEnd().endsWith("You>"),
    )
    const [chatNow] = await chatIds(plane.cp)
    const pending = await (await plane.cp.api(`/api/v1/ai/chat/${chatNow}/question`)).json()
    expect(pending).toEqual({ question: null })
    expect(await desired()).not.toContain(other)

    // Ctrl+C at the prompt only clears the line.
    await keys("-l", "half a thought")
    await keys("C-c")
    await see("the hint", (s) => s.includes("(Ctrl+D or /quit leaves the chat)") && s.trimEnd().endsWith("You>"))
    expect(await chatIds(plane.cp)).toEqual([chatNow as number])

    // Ctrl+D leaves, and the chat is deleted.
    await keys("C-d")
    await expectEnded()
  }, 240_000)

  test("/exit and /quit end the chat too, and delete it", async () => {
    for (const command of ["/exit", "/quit"]) {
      await startChat([])
      expect(await chatIds(plane.cp)).toHaveLength(1)
      await type(command)
      await expectEnded()
    }
  }, 120_000)

  test("with no credential it asks for a login at the terminal, and the session is kept for next time", async () => {
    await addUser(plane.cp, "alice", "operator")
    const none = { CHIMERA_TOKEN: "", CHIMERA_DATA_DIR: join(plane.home, "no-admin-token"), USER: "alice" }
    await launch([], none)
    const asked = await see("the login prompt", (s) => s.includes("Username"))
    expect(asked).toContain(`no stored session; log in to ${plane.cp.url}`)
    await keys("Enter") // the username offered is $USER
    await see("the password prompt", (s) => s.includes("Password for alice"))
    await type(PASSWORD)
    const connected = await see("the chat to connect", (s) => s.includes("Type /help"))
    expect(connected).toContain("as alice (operator)")
    expect(connected).not.toContain(PASSWORD)
    const tokenFile = join(plane.home, ".config/chimera/token")
    expect(existsSync(tokenFile)).toBe(true)

    // The session ends mid-chat (revoked here): the next message asks for a login, and the chat goes on.
    const { token } = JSON.parse(readFileSync(tokenFile, "utf8")) as { token: string }
    expect((await call(plane.cp, token, "POST", "/api/auth/revoke", {})).status).toBe(200)
    await type("Hello?")
    await see("the login prompt again", (s) => sinceLastPrompt(s).includes("no longer accepts this session"))
    await see("the username prompt", (s) => sinceLastPrompt(s).includes("Username"))
    await keys("Enter")
    await see("the password prompt again", (s) => sinceLastPrompt(s).includes("Password for alice"))
    await type(PASSWORD)
    await see("the chat to go on", (s) => sinceLastPrompt(s).includes("Logged in again as alice (operator)"))
    plane.llm.script({ text: "Hello, alice." })
    await type("Hello again")
    await see("the answer", (s) => sinceLastPrompt(s).includes("Hello, alice."))
    await type("/quit")
    await expectEnded()
    // The kept session is used without asking.
    const again = await startChat([], none, "alice (operator)")
    expect(again).not.toContain("Username")
    await type("/quit")
    await expectEnded()
  }, 120_000)

  test("NO_COLOR on a terminal: the same answer without colours, spinner or redrawn draft", async () => {
    await startChat(["--node", "web-1"], { NO_COLOR: "1" })
    plane.llm.script({
      text: "web-1 is **healthy**.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nStill writing",
      hang: "after-text",
    })
    await type("How is web-1?")
    const shown = await see("the finished blocks", (s) => /│ 1 │ 2 │/.test(sinceLastPrompt(s)))
    // The block still arriving is not drawn: plain output never rewrites what it printed.
    expect(sinceLastPrompt(shown)).not.toContain("Still writing")
    expect(sinceLastPrompt(shown)).not.toContain("Thinking")
    const styled = await tmux("capture-pane", "-p", "-e", "-S", "-", "-t", "chat")
    expect(styled).not.toMatch(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`))
    await keys("C-c")
    await see("the cancel", (s) => sinceLastPrompt(s).includes("(answer cancelled)"))
    expect(sinceLastPrompt(await screen())).toContain("Still writing")
    await type("/quit")
    await expectEnded()
  }, 120_000)
})
