// `chimera audit` lists the newest entries of a log that has grown past its `--limit` (oldest first
// among them), as `chimera events` does: a person checking what just happened must see it, not the
// first hundred rows ever written. `GET /api/audit?tail=true` is how; without it the API still pages
// from the oldest (`after`), and `--export` still writes every entry.
import { expect, test } from "bun:test"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startInProcess } from "./support/control-plane.ts"
import { startPostgres } from "./support/postgres.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

interface Entry {
  id: number
  action: string
  nodeId: string | null
}

// The query is the store's own on each dialect: SQLite by default, PostgreSQL for replicas.
test.each(["sqlite", "postgres"])(
  "chimera audit shows the latest entries that match; the API's tail=true answers them, after= pages from the oldest (%s)",
  async (dialect) => {
    await using pg = dialect === "postgres" ? await startPostgres() : null
    await using cp = await startInProcess(pg ? { databaseUrl: await pg.database("chimera_audit_listing") } : {})
    const home = await mkdtemp(join(tmpdir(), "chimera-audit-listing-"))
    try {
      // Eight audited requests: a join token for each of eight nodes.
      for (let i = 1; i <= 8; i++) {
        const res = await cp.api("/api/nodes/join-tokens", {
          method: "POST",
          body: JSON.stringify({ nodeId: `n-${i}` }),
        })
        expect(res.status).toBe(201)
      }
      const chimera = (args: string[]) =>
        run([process.execPath, MAIN, "audit", ...args], {
          env: { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, CHIMERA_DATA_DIR: join(home, "data") },
        })
      const tokens = ["--action", "POST /api/nodes/join-tokens"]

      const latest = await chimera([...tokens, "--limit", "3", "--json"])
      expect(latest.code).toBe(0)
      const shown = (JSON.parse(latest.stdout) as { entries: Entry[] }).entries
      expect(shown.map((e) => e.nodeId)).toEqual(["n-6", "n-7", "n-8"])
      // The table too: the last line is the newest entry.
      const table = await chimera([...tokens, "--limit", "2"])
      expect(table.stdout.trim().split("\n").at(-1)).toContain("n-8")
      expect(table.stdout).not.toContain("n-6")

      const api = async (query: string) =>
        (
          (await (await cp.api(`/api/audit?action=${encodeURIComponent(tokens[1] as string)}&${query}`)).json()) as {
            entries: Entry[]
          }
        ).entries.map((e) => e.nodeId)
      expect(await api("limit=2&tail=true")).toEqual(["n-7", "n-8"])
      expect(await api("limit=2")).toEqual(["n-1", "n-2"])
      const bad = await cp.api("/api/audit?tail=maybe")
      expect(bad.status).toBe(422)

      const file = join(home, "audit.jsonl")
      expect((await chimera([...tokens, "--export", file])).code).toBe(0)
      const exported = (await readFile(file, "utf8")).trim().split("\n")
      expect(exported.map((l) => (JSON.parse(l) as Entry).nodeId)).toEqual(
        Array.from({ length: 8 }, (_, i) => `n-${i + 1}`),
      )
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  },
  120_000,
)
