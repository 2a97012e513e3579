// A reader that stops early closes the pipe under a command: `chimera audit | head -1`. Every data
// command must then end quietly, with status 141 (what the shell shows for `seq 1000000 | head -1`),
// never with an EPIPE stack trace. Each command runs through a real shell pipe against a real control
// plane holding many rows. Two readers: `head -1` on outputs large enough (checked here) that head has
// certainly exited before the command finished writing; and, for every command, a reader that closes
// its end before the command may start, so even a one-line answer meets a closed pipe.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { enrollNode } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { requireTool, run } from "./support/tools.ts"

setDefaultTimeout(120_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const NODES = 500
const TOKENS = 1500
/**
 * Beyond a pipe's buffer (64 KiB on Linux) plus what `head` reads at once (8 KiB), with a margin of
 * 16 KiB (the newest 1,000 audit rows, token creations, come to about 96 KiB as a table).
 */
const LARGE = 88 * 1024

let cp: TestControlPlane
let home: string
let env: Record<string, string>

beforeAll(async () => {
  requireTool("tmux")
  cp = await startInProcess()
  home = await mkdtemp(join(tmpdir(), "chimera-closed-pipe-"))
  env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, "config"),
    CHIMERA_URL: cp.url,
    CHIMERA_TOKEN: cp.adminToken,
    CHIMERA_DATA_DIR: join(home, "data"),
    CHIMERA_CONFIG_FILE: "",
    CHIMERA_TMUX_SOCKET: `chimera-closed-pipe-${process.pid}`,
    NO_COLOR: "1",
    BUN: process.execPath,
  }
  for (let i = 0; i < NODES; i += 20)
    await Promise.all(Array.from({ length: 20 }, (_, j) => enrollNode(cp, `node-${i + j + 1}`)))
  for (let i = 0; i < TOKENS; i += 20)
    await Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        cp.api("/api/tokens", { method: "POST", body: JSON.stringify({ name: `token-${i + j}`, role: "viewer" }) }),
      ),
    )
})
afterAll(async () => {
  await cp?.stop()
  if (home) await rm(home, { recursive: true, force: true })
})

const sh = (script: string, args: string[]) =>
  run([requireTool("bash"), "-c", script, "bash", ...args], { env: { ...env, CHIMERA_MAIN: MAIN }, cwd: home })

const quote = (args: string[]) => args.map((a) => `'${a}'`).join(" ")

/** The command piped into `head -1`; the statuses of both sides and what reached the terminal. */
async function intoHead(args: string[]) {
  const r = await sh(
    `"$BUN" "$CHIMERA_MAIN" ${quote(args)} 2>"$HOME/stderr" | head -1; echo "\${PIPESTATUS[*]}" >"$HOME/status"`,
    [],
  )
  const [cli, head] = (await Bun.file(join(home, "status")).text()).trim().split(" ").map(Number)
  return { cli, head, stdout: r.stdout, stderr: await Bun.file(join(home, "stderr")).text() }
}

/** The command's stdout goes to a reader that closed it before the command was started. */
async function intoClosedReader(args: string[]) {
  const closed = join(home, "reader-closed")
  await rm(closed, { force: true })
  const script = [
    `(while [ ! -e "$1" ]; do sleep 0.01; done; exec "$BUN" "$CHIMERA_MAIN" ${quote(args)} 2>"$HOME/stderr")`,
    `| (exec 0<&-; : >"$1"); echo "\${PIPESTATUS[0]}" >"$HOME/status"`,
  ].join(" ")
  await sh(script, [closed])
  const cli = Number((await Bun.file(join(home, "status")).text()).trim())
  return { cli, stderr: await Bun.file(join(home, "stderr")).text() }
}

const STACK = /EPIPE|\n\s+at |Bun v\d/

const MANY_ROWS: string[][] = [
  ["audit", "--limit", "1000"],
  ["audit", "--limit", "1000", "--json"],
  ["tokens", "list"],
  ["tokens", "list", "--json"],
  ["nodes", "list", "--json"],
  ["events", "--limit", "1000", "--json"],
]

const EVERY_DATA_COMMAND: string[][] = [
  ...MANY_ROWS,
  ["nodes", "list"],
  ["nodes", "show", "node-1"],
  ["nodes", "show", "node-1", "--json"],
  ["events"],
  ["audit"],
  ["users", "list"],
  ["users", "list", "--json"],
  ["deployments"],
  ["deployments", "--json"],
  ["sessions", "list"],
  ["sessions", "list", "--json"],
  ["whoami"],
  ["whoami", "--json"],
  ["generations", "--targets", "root@127.0.0.1:1", "--timeout", "10"],
  ["generations", "--targets", "root@127.0.0.1:1", "--timeout", "10", "--json"],
  ["exec", "--targets", "root@127.0.0.1:1", "--timeout", "10", "--json", "--", "true"],
  ["events", "--follow", "--json"],
  ["--help"],
]

describe("a closed pipe ends a command quietly with status 141", () => {
  for (const args of MANY_ROWS)
    test(`chimera ${args.join(" ")} | head -1`, async () => {
      const full = await run([process.execPath, MAIN, ...args], { env, cwd: home })
      expect(full.code).toBe(0)
      expect(full.stdout.length).toBeGreaterThan(LARGE)
      const r = await intoHead(args)
      expect(r.stdout).toBe(`${full.stdout.split("\n")[0]}\n`)
      expect(r.head).toBe(0)
      expect(r.stderr).not.toMatch(STACK)
      expect(r.stderr).toBe("")
      expect(r.cli).toBe(141)
    })

  for (const args of EVERY_DATA_COMMAND)
    test(`chimera ${args.join(" ")} into a reader that has gone`, async () => {
      const r = await intoClosedReader(args)
      expect(r.stderr).not.toMatch(STACK)
      expect(r.cli).toBe(141)
    })
})
