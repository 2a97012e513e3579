// `chimera deployments list`, as `chimera nodes list` and `chimera incidents list` are spelled, lists the
// deployments; it is not a lookup of a deployment whose id is "list".
import { expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

test("chimera deployments list lists, as chimera deployments does", async () => {
  const dir = await mkdtemp(join(tmpdir(), "chimera-deployments-list-"))
  try {
    const env = { ...process.env, HOME: dir, CHIMERA_DATA_DIR: dir, CHIMERA_DB: "", CHIMERA_URL: "", NO_COLOR: "1" }
    const bare = await run([process.execPath, MAIN, "deployments"], { env })
    const list = await run([process.execPath, MAIN, "deployments", "list"], { env })
    expect(bare.code).toBe(0)
    expect({ code: list.code, stdout: list.stdout, stderr: list.stderr }).toEqual({
      code: 0,
      stdout: bare.stdout,
      stderr: bare.stderr,
    })
    expect(list.stdout).toBe("No deployments recorded yet: each `chimera deploy` run is recorded here.\n")
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}, 60_000)
