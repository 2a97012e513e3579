// A control plane stopped while an approved action ran (its question left `running`, no result
// written): after the restart the model is told the action was approved and may have run, not only
// that the turn was interrupted, which reads as "it never ran" and leads it to propose the same action
// again, for a person to run twice. The state a stop leaves is written into the SQLite file between the
// two runs, as the approval's first step leaves it (the action itself cannot be held mid-run here).
// And a control plane on SQLite SIGKILLed mid-turn holds nothing after its restart: it is the only
// process on the file, so the turn lease the dead process left is void.
import { Database } from "bun:sqlite"
import { expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aiSettingsFor } from "./support/ai-chat.ts"
import { freePort, spawnControlPlane, startInProcess } from "./support/control-plane.ts"
import type { LlmServer } from "./support/llm-server.ts"
import { waitFor } from "./support/wait.ts"
import { at, call, held, newChat, reply } from "./support/wire-chat.ts"
import { startWireLlmServer } from "./support/wire-llm-server.ts"

setDefaultTimeout(60_000)

test("after a restart during an approved action, the model reads that it was approved and may have run", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-stopped-approval-"))
  try {
    await using llm = await startWireLlmServer("openai")
    const settings = aiSettingsFor(llm as unknown as LlmServer)
    const first = await startInProcess({ dataDir, ai: settings })
    const chatId = await newChat(first)
    llm.script(reply("openai", "I will restart nginx.", true))
    expect((await call(first, "POST", `/chat/${chatId}/message`, { message: "nginx is down" })).status).toBe(200)
    await first.stop()
    const db = new Database(join(dataDir, "chimera.db"))
    db.run("UPDATE ai_questions SET status = 'running', answered_by = 'otto', answered_at = '2026-01-02T03:04:05.000Z'")
    db.close()

    await using again = await startInProcess({ dataDir, ai: settings })
    llm.script(reply("openai", "Let me check nginx first."))
    expect((await call(again, "POST", `/chat/${chatId}/message`, { message: "did it work?" })).status).toBe(200)
    expect(at(llm, 1, "otto approved this at 2026-01-02T03:04:05.000Z")).toBeGreaterThan(0)
    expect(at(llm, 1, "may have run")).toBeLessThan(at(llm, 1, "did it work?"))
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})

test("on SQLite a control plane SIGKILLed mid-turn takes the chat's next message at once after its restart", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-killed-turn-"))
  try {
    await using llm = await startWireLlmServer("openai")
    // The lease outlives the test unless the restart voids it: no other process shares an SQLite file.
    await using cp = await spawnControlPlane(freePort(), {
      dataDir,
      env: {
        CHIMERA_AI_PROVIDER: "openai",
        CHIMERA_AI_MODEL: "gpt-test-1",
        CHIMERA_AI_BASE_URL: llm.baseUrl,
        CHIMERA_AI_API_KEY: llm.apiKey,
        CHIMERA_AI_TURN_LEASE_SECONDS: "600",
      },
    })
    const chatId = await newChat(cp)
    const answer = held(reply("openai", "Looking."))
    llm.script(answer.reply)
    void call(cp, "POST", `/chat/${chatId}/message`, { message: "nginx is down" }).catch(() => {})
    await waitFor(
      "the model's call",
      async () => llm.requests.length,
      (n) => n === 1,
    )
    await cp.kill()
    answer.release()
    await cp.restart()
    llm.script(reply("openai", "Here again."))
    const next = await call(cp, "POST", `/chat/${chatId}/message`, { message: "still there?" })
    expect(next.status).toBe(200)
    expect(((await next.json()) as { response: string }).response).toBe("Here again.")
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
})
