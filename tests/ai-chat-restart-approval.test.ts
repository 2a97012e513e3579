// A control plane stopped while an approved action ran (its question left `running`, no result
// written): after the restart the model is told the action was approved and may have run, not only
// that the turn was interrupted, which reads as "it never ran" and leads it to propose the same action
// again, for a person to run twice. The state a stop leaves is written into the SQLite file between the
// two runs, as the approval's first step leaves it (the action itself cannot be held mid-run here).
import { Database } from "bun:sqlite"
import { expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aiSettingsFor } from "./support/ai-chat.ts"
import { startInProcess } from "./support/control-plane.ts"
import type { LlmServer } from "./support/llm-server.ts"
import { at, call, newChat, reply } from "./support/wire-chat.ts"
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
