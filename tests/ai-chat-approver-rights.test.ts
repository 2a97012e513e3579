// An approval lends the approver's rights to the one action approved, not to the rest of the turn. An
// admin approving a viewer's question resumes that viewer's turn; the reads the model asks for next
// (which run at once, unasked) must not run as the admin: `check_congruence` with a `config_path` is
// a Nix build on the control plane's host, which only an admin may start, and a viewer's chat must
// not be able to start one by waiting for an admin to approve something harmless.
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

test("after an admin approves a viewer's question, the turn's next reads run with no admin rights", async () => {
  const created = await chatCall(cp.url, vera, "POST", "/chat", {})
  const { chatId } = (await created.json()) as { chatId: number }
  llm.script({ toolCalls: [{ name: "run_command", args: { command: "uptime", nodes: ["ghost-1"] } }] })
  const asked = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "is ghost-1 up?" })
  const q = ((await asked.json()) as MessageResponse).pendingQuestion as Question
  expect(q.context).toBe("uptime")

  // Once the approved command has run, the model (steered by the chat's owner) asks for a build on
  // the control plane's host, then says what the API answered it.
  let seen = ""
  llm.script(
    { toolCalls: [{ name: "check_congruence", args: { targets: ["ghost-1"], config_path: "/nonexistent/x.nix" } }] },
    (req) => {
      seen = JSON.stringify(req.body.messages)
      return { text: "done" }
    },
  )
  const approved = await chatCall(cp.url, ada, "POST", `/chat/${chatId}/answer`, {
    questionId: q.id,
    positive: true,
    wait: true,
  })
  expect(approved.status).toBe(200)
  expect(((await approved.json()) as MessageResponse).response).toBe("done")
  // The build was refused as it would be to the chat's owner: it never ran as the admin.
  expect(seen).toContain("config_path needs the admin role")
  const audit = (await (await cp.api("/api/audit?action=POST%20/api/congruence")).json()) as {
    entries: { actor: string; role: string | null; status: number }[]
  }
  expect(audit.entries.map((e) => [e.role, e.status])).toEqual([["viewer", 403]])
})
