// An approval lends the approver's rights to the one action approved, not to the rest of the turn. An
// admin approving a viewer's question resumes that viewer's turn; the reads the model asks for next
// run at once, unasked, and must not run as the admin. And a build on the control plane's host
// (`check_congruence` or a deploy with a `config_path`: its builders run code there) is never a read
// the model may start unasked, even in an admin's own chat, since fleet data can steer the model.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import type { MessageResponse, Question } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall } from "./support/ai-chat.ts"
import { addUser, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, startLlmServer } from "./support/llm-server.ts"

setDefaultTimeout(60_000)

let llm: LlmServer
let cp: TestControlPlane
let vera = ""
let ada = ""

beforeAll(async () => {
  llm = await startLlmServer("anthropic")
  cp = await startInProcess({ ai: aiSettingsFor(llm) })
  await addUser(cp, "vera", "viewer")
  await addUser(cp, "ada", "admin")
  vera = await login(cp, "vera")
  ada = await login(cp, "ada")
})
afterAll(async () => {
  await cp?.stop()
  await llm?.stop()
})

test("after an admin approves a viewer's question, the turn's next reads run with a viewer's rights", async () => {
  const created = await chatCall(cp.url, vera, "POST", "/chat", {})
  const { chatId } = (await created.json()) as { chatId: number }
  llm.script({ toolCalls: [{ name: "run_command", args: { command: "uptime", nodes: ["ghost-1"] } }] })
  const asked = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "is ghost-1 up?" })
  const q = ((await asked.json()) as MessageResponse).pendingQuestion as Question
  expect(q.context).toBe("uptime")

  // Once the approved command has run, the model reads congruence (a POST, so it has an audit row
  // saying whose rights it ran with), then answers.
  llm.script({ toolCalls: [{ name: "check_congruence", args: { targets: ["ghost-1"] } }] }, { text: "done" })
  const approved = await chatCall(cp.url, ada, "POST", `/chat/${chatId}/answer`, {
    questionId: q.id,
    positive: true,
    wait: true,
  })
  expect(approved.status).toBe(200)
  expect(((await approved.json()) as MessageResponse).response).toBe("done")
  const audit = (await (await cp.api("/api/audit?action=POST%20/api/congruence")).json()) as {
    entries: { role: string | null; detail: Record<string, unknown> | null }[]
  }
  expect(audit.entries.map((e) => [e.role, e.detail?.chat])).toEqual([["viewer", chatId]])
})

test("a build on the control plane's host is a question even in an admin's own chat, and runs only once approved", async () => {
  const created = await chatCall(cp.url, ada, "POST", "/chat", {})
  const { chatId } = (await created.json()) as { chatId: number }
  // Text the model read in the fleet's data talked it into building a file on the host.
  llm.script({
    toolCalls: [{ name: "check_congruence", args: { targets: ["ghost-2"], config_path: "/nonexistent/y.nix" } }],
  })
  const asked = await chatCall(cp.url, ada, "POST", `/chat/${chatId}/message`, { message: "is ghost-2 congruent?" })
  const q = ((await asked.json()) as MessageResponse).pendingQuestion as Question
  expect(q.context).toBe("build /nonexistent/y.nix, compare with ghost-2")
  const congruence = async () =>
    ((await (await cp.api("/api/audit?action=POST%20/api/congruence")).json()) as { entries: { actor: string }[] })
      .entries
  const before = (await congruence()).length
  llm.script((req) => ({
    text: JSON.stringify(req.body.messages).includes("no Nix config at /nonexistent/y.nix") ? "built" : "??",
  }))
  const approved = await chatCall(cp.url, ada, "POST", `/chat/${chatId}/answer`, {
    questionId: q.id,
    positive: true,
    wait: true,
  })
  expect(((await approved.json()) as MessageResponse).response).toBe("built")
  expect((await congruence()).length).toBe(before + 1)
})
