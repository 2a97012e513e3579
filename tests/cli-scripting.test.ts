// The CLI as scripts drive it, against a real test node over SSH: what a command runs is the whole
// command line it was given, --json says in its exit status what the table says, and the times it
// prints are UTC. The real CLI as a subprocess, no control plane.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import type { StorePath } from "../protocol/ids.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { run } from "./support/tools.ts"

setDefaultTimeout(60_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

let work: string
let bed: Testbed
let gen1: StorePath
let gen2Config: string

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-cli-scripting-"))
  gen1 = await buildTestSystem(1, { tag: "cli-scripting" })
  gen2Config = join(work, "gen2.nix")
  await writeFile(gen2Config, `import ${TEST_SYSTEM} { generation = "2"; tag = "cli-scripting"; }\n`)
  bed = await createTestbed({ nodes: 1, boot: gen1, prefix: "script" })
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await rm(work, { recursive: true, force: true })
})

const chimera = (args: string[]) =>
  run([process.execPath, MAIN, ...args], {
    env: {
      HOME: work,
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_CONFIG_FILE: bed.configFile,
      CHIMERA_URL: "",
      CHIMERA_TOKEN: "",
      NO_COLOR: "1",
    },
  })

test("deploy runs the whole COMMAND after --, not its first word, and records it so", async () => {
  const [n] = bed.nodes
  const r = await chimera([
    "deploy",
    "--targets",
    n!.name,
    "--config",
    gen2Config,
    "--json",
    // Passes only once the command has made both files.
    "--health-cmd",
    "test -e /run/cli-words-a && test -e /run/cli-words-b",
    "--",
    "touch",
    "/run/cli-words-a",
    "/run/cli-words-b",
  ])
  const record = JSON.parse(r.stdout) as DeploymentRecord
  // Before: the node ran `touch` alone, so the health check never passed and the deploy rolled back.
  expect(record.command).toBe("touch /run/cli-words-a /run/cli-words-b")
  expect({ code: r.code, status: record.targets[0]?.status, error: record.targets[0]?.error }).toEqual({
    code: 0,
    status: "deployed",
    error: null,
  })
})
