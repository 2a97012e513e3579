// An action the chat's model proposes runs on a real node only once a human whose role allows it says
// yes: a testbed node with its real agent, a control plane whose chat talks to a scripted model (both
// providers), and `systemctl` on the node's PATH standing in for systemd (it records each call in
// the node's own /run and prints a line the test cannot predict). The model's next call must carry
// the node's real output, and the audit log one row for the command naming chat, model and approver.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ChatStreamEvent, MessageResponse, Question } from "../protocol/ai.ts"
import { agentTestbed } from "./support/agent-testbed.ts"
import { aiSettingsFor, chatCall, doneOf, eventStream } from "./support/ai-chat.ts"
import { addUser, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, type Provider, startLlmServer } from "./support/llm-server.ts"
import type { Testbed } from "./support/testbed.ts"

setDefaultTimeout(120_000)

// The node's systemd: what it was asked goes to the node's private /run; the pid makes each answer unique.
const SYSTEMCTL = `#!/bin/sh
echo "$*" >> /run/systemctl.log
echo "$2.service: $1 done (pid $$)"
`

type AuditEntry = {
  actor: string
  action: string
  status: number
  command: string | null
  detail: Record<string, unknown> | null
}

let bin: string
const savedPath = process.env.PATH

beforeAll(async () => {
  bin = await mkdtemp(join(tmpdir(), "chimera-chat-bin-"))
  await writeFile(join(bin, "systemctl"), SYSTEMCTL)
  await chmod(join(bin, "systemctl"), 0o755)
  // Agents inherit this process's environment: their shells find this systemctl first.
  process.env.PATH = `${bin}:${savedPath}`
})
afterAll(async () => {
  process.env.PATH = savedPath
  await rm(bin, { recursive: true, force: true })
})

const toolResults = (body: Record<string, unknown>) => JSON.stringify(body.messages)

for (const provider of ["anthropic", "openai"] as Provider[]) {
  describe(`approval over ${provider}`, () => {
    let llm: LlmServer
    let cp: TestControlPlane
    let bed: Testbed
    let otto = ""
    let vera = ""
    let ada = ""
    const node = `ap${provider[0]}-1`

    beforeAll(async () => {
      llm = await startLlmServer(provider)
      cp = await startInProcess({ ai: aiSettingsFor(llm) })
      bed = await agentTestbed(cp, { nodes: 1, prefix: `ap${provider[0]}` })
      await addUser(cp, "otto", "operator")
      await addUser(cp, "vera", "viewer")
      await addUser(cp, "ada", "admin")
      otto = await login(cp, "otto")
      vera = await login(cp, "vera")
      ada = await login(cp, "ada")
    }, 120_000)
    afterAll(async () => {
      await bed?.stop()
      await cp?.stop()
      await llm?.stop()
    })

    test("systemctl restart nginx waits for approval, runs on the node under the approver, and the model quotes its real output", async () => {
      const created = await chatCall(cp.url, otto, "POST", "/chat", { nodeId: node })
      const { chatId } = (await created.json()) as { chatId: number }
      llm.script({
        text: "nginx looks stuck; I propose a restart.",
        toolCalls: [{ name: "run_command", args: { command: "systemctl restart nginx", nodes: [node] } }],
      })
      const asked = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "nginx is down on it" })
      expect(asked.status).toBe(200)
      const { response, pendingQuestion } = (await asked.json()) as MessageResponse
      expect(response).toBe("nginx looks stuck; I propose a restart.")
      const q = pendingQuestion as Question
      expect(q.context).toBe("systemctl restart nginx")
      expect(q.confirmationType).toBe("approve_reject")
      // Nothing ran yet: the node's systemctl was never called.
      const before = await bed.nodes[0]?.node.exec(["sh", "-c", "cat /run/systemctl.log 2>/dev/null || true"])
      expect(before?.stdout ?? "").toBe("")

      // A viewer may not answer another user's chat; the question waits on.
      const refused = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/answer`, {
        questionId: q.id,
        positive: true,
      })
      expect(refused.status).toBe(403)
      expect(((await refused.json()) as { code: string }).code).toBe("ACCESS_DENIED")

      let quoted = ""
      llm.script((req) => {
        const m = /\.service: restart done \(pid \d+\)/.exec(toolResults(req.body))
        quoted = m ? `nginx${m[0]}` : ""
        return { text: m ? `Restarted. The node said: ${quoted}` : "I did not see the output." }
      })
      const approved = await chatCall(cp.url, ada, "POST", `/chat/${chatId}/answer/stream`, {
        questionId: q.id,
        positive: true,
        selectedOption: -1,
      })
      expect(approved.status).toBe(200)
      const events = await eventStream(approved).all()
      const tool = events.filter((e): e is Extract<ChatStreamEvent, { event: "tool" }> => e.event === "tool")
      expect(tool.map((e) => e.data.status)).toEqual(["started", "succeeded"])
      const ran = tool[1]?.data.result as { results: { node: string; stdout: string; exit_code: number }[] }
      expect(ran.results[0]?.node).toBe(node)
      expect(ran.results[0]?.exit_code).toBe(0)
      const stdout = ran.results[0]?.stdout.trim() ?? ""
      expect(stdout).toMatch(/^nginx\.service: restart done \(pid \d+\)$/)
      expect(doneOf(events).response).toBe(`Restarted. The node said: ${stdout}`)
      expect(quoted).toBe(stdout)
      const log = await bed.nodes[0]?.node.exec(["cat", "/run/systemctl.log"])
      expect(log?.stdout).toBe("restart nginx\n")

      const audit = (await (await cp.api("/api/audit?action=POST%20/api/fleet/run")).json()) as {
        entries: AuditEntry[]
      }
      expect(audit.entries.length).toBe(1)
      const row = audit.entries[0]
      expect(row?.actor).toBe("ada")
      expect(row?.status).toBe(200)
      expect(row?.command).toBe("systemctl restart nginx")
      expect(row?.detail).toMatchObject({
        via: "chat",
        chat: chatId,
        model: provider === "anthropic" ? "claude-test-1" : "gpt-test-1",
      })
    })

    test("an operator's approval of a command whose risk needs an admin is refused and the question waits for one", async () => {
      const created = await chatCall(cp.url, otto, "POST", "/chat", { objectId: node })
      const { chatId } = (await created.json()) as { chatId: number }
      llm.script({ toolCalls: [{ name: "run_command", args: { command: "systemctl stop nginx", nodes: [node] } }] })
      const asked = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/message`, { message: "stop nginx" })
      const q = ((await asked.json()) as MessageResponse).pendingQuestion as Question
      expect(q.context).toBe("systemctl stop nginx")
      expect(q.text).toContain("high-risk")
      const own = await chatCall(cp.url, otto, "POST", `/chat/${chatId}/answer`, { questionId: q.id, positive: true })
      expect(own.status).toBe(403)
      const body = (await own.json()) as { code: string; error: string }
      expect(body.code).toBe("ACCESS_DENIED")
      expect(body.error).toContain("commands:run-high")
      const still = (await (await chatCall(cp.url, otto, "GET", `/chat/${chatId}/question`)).json()) as {
        question: Question | null
      }
      expect(still.question?.id).toBe(q.id)
      // An admin sees the question of a chat that is not theirs, and answers it.
      const seen = (await (await chatCall(cp.url, ada, "GET", `/chat/${chatId}/question`)).json()) as {
        question: Question | null
      }
      expect(seen.question?.context).toBe("systemctl stop nginx")
      llm.script((req) => ({ text: toolResults(req.body).includes("stop done") ? "Stopped." : "??" }))
      const approved = await chatCall(cp.url, ada, "POST", `/chat/${chatId}/answer`, {
        questionId: q.id,
        positive: true,
        wait: true,
      })
      expect(approved.status).toBe(200)
      expect(await approved.json()).toEqual({ success: true, response: "Stopped.", pendingQuestion: null })
      const log = await bed.nodes[0]?.node.exec(["cat", "/run/systemctl.log"])
      expect(log?.stdout).toBe("restart nginx\nstop nginx\n")
      // The refused approval ran nothing: one row for the stop, by the admin.
      const audit = (await (await cp.api("/api/audit?action=POST%20/api/fleet/run")).json()) as {
        entries: AuditEntry[]
      }
      const stops = audit.entries.filter((e) => e.command === "systemctl stop nginx")
      expect(stops.map((e) => [e.actor, e.status, e.detail?.chat])).toEqual([["ada", 200, chatId]])
    })
  })
}
