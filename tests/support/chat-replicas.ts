// Two in-process control-plane replicas on one new PostgreSQL database, sharing a data dir (and so
// the admin token), their chats' model the wire-exact server (wire-llm-server.ts).
import { afterAll, beforeAll } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AiSettings } from "../../control/adapters/llm/provider.ts"
import type { Clock } from "../../control/domain/ports.ts"
import { aiSettingsFor } from "./ai-chat.ts"
import { startInProcess } from "./control-plane.ts"
import type { LlmServer } from "./llm-server.ts"
import { startPostgres, type TestPostgres } from "./postgres.ts"
import { startWireLlmServer, type WireLlmServer } from "./wire-llm-server.ts"

export async function twoReplicas(
  pg: TestPostgres,
  llm: WireLlmServer,
  name: string,
  more: { ai?: Partial<AiSettings>; clockB?: Clock } = {},
) {
  const url = await pg.database(name)
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-replicas-"))
  const ai = aiSettingsFor(llm as unknown as LlmServer, more.ai)
  const a = await startInProcess({ dataDir, databaseUrl: url, ai })
  const b = await startInProcess({ dataDir, databaseUrl: url, ai, ...(more.clockB ? { clock: more.clockB } : {}) })
  return {
    url,
    a,
    b,
    async [Symbol.asyncDispose]() {
      await a.stop()
      await b.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** A suite's PostgreSQL server and wire-exact model server, started before its tests and stopped after. */
export function chatReplicaSuite(): { pg: TestPostgres; llm: WireLlmServer } {
  const suite = {} as { pg: TestPostgres; llm: WireLlmServer }
  beforeAll(async () => {
    suite.pg = await startPostgres()
    suite.llm = await startWireLlmServer("anthropic")
  }, 60_000)
  afterAll(async () => {
    await suite.llm?.stop()
    await suite.pg?.stop()
  })
  return suite
}
