// `chimera deploy` at a terminal, with what a node says in its progress: a health check's output is
// the node's (a compromised node prints what it likes), and the spinner line that shows progress is
// written by @clack/prompts as it is given, around the CLI's output layer. Real test node over SSH,
// real Nix, the real CLI on a real terminal (`script`).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { requireTool, run } from "./support/tools.ts"

setDefaultTimeout(120_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

let work: string
let bed: Testbed

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-deploy-terminal-"))
  bed = await createTestbed({ nodes: 1, boot: await buildTestSystem(1, { tag: "deploy-terminal" }), prefix: "tty" })
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await rm(work, { recursive: true, force: true })
})

test("a health check's output shown in the progress line reaches the terminal escaped", async () => {
  const script = requireTool("script")
  const config = join(work, "system-2.nix")
  await writeFile(config, `import ${TEST_SYSTEM} { generation = "2"; tag = "deploy-terminal"; }\n`)
  // What the node answers the check with: a clipboard write (OSC 52) and a new window title.
  const check = `printf '\\033]52;c;aGk=\\007\\033]0;owned\\007' >&2; false`
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
  const line = [
    process.execPath,
    MAIN,
    "deploy",
    "--targets",
    bed.nodes[0]!.target,
    "--config",
    config,
    "--health-cmd",
    check,
    "--health-timeout",
    "3",
    "--identity",
    bed.identityFile,
    "--known-hosts",
    bed.knownHostsFile,
  ]
    .map(q)
    .join(" ")
  // A terminal of a usual size: at no size (script's own), clack wraps every character onto a line.
  const r = await run([script, "-qec", `stty cols 200 rows 50; ${line}`, "/dev/null"], {
    env: {
      HOME: work,
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_URL: "",
      CHIMERA_TOKEN: "",
      CHIMERA_CONFIG_FILE: "",
      NO_COLOR: undefined,
      TERM: "xterm",
    },
  })
  expect(r.code).toBe(1)
  expect(r.stdout).toContain("\\x1b]52;c;aGk=")
  expect(r.stdout).not.toContain("\x1b]52;")
  expect(r.stdout).not.toContain("\x1b]0;owned")
})

test("with NO_COLOR, or on a dumb terminal, no escape sequence is written: progress comes as lines, not a spinner", async () => {
  const script = requireTool("script")
  const config = join(work, "system-1.nix")
  await writeFile(config, `import ${TEST_SYSTEM} { generation = "1"; tag = "deploy-terminal"; }\n`)
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
  const deploy = ["deploy", "--targets", bed.nodes[0]!.target, "--config", config, "--dry-run"]
  const ssh = ["--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile]
  const line = [process.execPath, MAIN, ...deploy, ...ssh].map(q).join(" ")
  for (const plain of [
    { NO_COLOR: "1", TERM: "xterm" },
    { NO_COLOR: undefined, TERM: "dumb" },
  ]) {
    const r = await run([script, "-qec", `stty cols 200 rows 50; ${line}`, "/dev/null"], {
      env: { HOME: work, CHIMERA_DATA_DIR: join(work, "data"), CHIMERA_URL: "", CHIMERA_CONFIG_FILE: "", ...plain },
    })
    // Before: clack's spinner hid the cursor and redrew its line (`\x1b[?25l`, `\x1b[1G\x1b[J`).
    expect({ plain, code: r.code, escapes: r.stdout.includes("\x1b") }).toEqual({ plain, code: 0, escapes: false })
    expect(r.stdout).toContain(`${bed.nodes[0]!.target}: plan: up to date`)
  }
  // A colour terminal still gets the spinner.
  const colour = await run([script, "-qec", `stty cols 200 rows 50; ${line}`, "/dev/null"], {
    env: {
      HOME: work,
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_URL: "",
      CHIMERA_CONFIG_FILE: "",
      NO_COLOR: undefined,
      TERM: "xterm",
    },
  })
  expect(colour.stdout).toContain("\x1b[?25l")
})
