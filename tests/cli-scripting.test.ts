// The CLI as scripts drive it, against a real test node over SSH: what a command runs is the whole
// command line it was given, --json says in its exit status what the table says, and the times it
// prints are UTC. The real CLI as a subprocess, no control plane.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generationsScript } from "../control/domain/activation.ts"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import { type GenerationsResult, parseGenerations } from "../control/domain/rollback.ts"
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

/** The CLI's environment: the testbed's inventory, no control plane, a home and data dir of the test's own. */
const cliEnv = () => ({
  HOME: work,
  CHIMERA_DATA_DIR: join(work, "data"),
  CHIMERA_CONFIG_FILE: bed.configFile,
  CHIMERA_URL: "",
  CHIMERA_TOKEN: "",
  NO_COLOR: "1",
})

const chimera = (args: string[]) => run([process.execPath, MAIN, ...args], { env: cliEnv() })

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

test("generations' dates are ISO 8601 UTC, whatever the node's time zone (nix-env prints local time, unmarked)", async () => {
  const [n] = bed.nodes
  const listed = await n!.node.exec(["env", "TZ=JST-9", "sh", "-c", generationsScript()])
  expect(listed.code).toBe(0)
  const mtime = await n!.node.exec(["stat", "-c", "%Y", "/nix/var/nix/profiles/system-1-link"])
  const created = new Date(Number(mtime.stdout.trim()) * 1000).toISOString()
  // Before: `2026-12-08T09:40:47`, the node's clock in Tokyo, read as if it were any other zone.
  expect(parseGenerations(listed.stdout)[0]?.date).toBe(created)

  const r = await chimera(["generations", "--targets", n!.name, "--json"])
  const { results } = JSON.parse(r.stdout) as { results: GenerationsResult[] }
  expect({ code: r.code, date: results[0]?.generations[0]?.date }).toEqual({ code: 0, date: created })
})

test("generations --json fails as the table does when a target cannot be read", async () => {
  // A loopback port nothing listens on: the connection is refused at once.
  const gone = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const target = `root@127.0.0.1:${gone.port}`
  gone.stop(true)
  for (const json of [[], ["--json"]]) {
    const r = await chimera(["generations", "--targets", `${bed.nodes[0]!.name},${target}`, ...json])
    // Before: the table exited 1 and --json 0, with `"ok": false` in what it printed.
    expect({ json, code: r.code }).toEqual({ json, code: 1 })
  }
})

test("watch --json prints one pass a line, which a line reader can take as it comes", async () => {
  const [n] = bed.nodes
  const child = Bun.spawn(
    [process.execPath, MAIN, "watch", "--json", "--interval", "1", "--targets", n!.name, "--config", gen2Config],
    { env: { ...process.env, ...cliEnv() }, stdout: "pipe", stderr: "pipe" },
  )
  let out = ""
  const reader = child.stdout.getReader()
  while (out.split("\n").length < 3) {
    const chunk = await reader.read()
    if (chunk.done) break
    out += new TextDecoder().decode(chunk.value)
  }
  child.kill("SIGTERM")
  await child.exited
  const lines = out.split("\n").filter((l) => l !== "")
  // Before: each pass was a JSON document over many lines (`{`, `  "at": …`), no line of it JSON alone.
  expect(lines.length).toBeGreaterThanOrEqual(2)
  for (const line of lines) expect(JSON.parse(line)).toMatchObject({ exitCode: 0, heal: null })
})
