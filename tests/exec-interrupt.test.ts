// Ctrl-C during `chimera exec`. The command runs on each node under coreutils' `timeout`, and sshd
// neither stops a command whose client went away nor signals a root login's, so an interrupted exec
// leaves it running there until --timeout. The CLI used to die of the signal without a word: no line
// saying the command was not recorded, nor where it may still run, nor for how long.
// The real CLI, as a child the test sends SIGINT (what Ctrl-C is without a spinner); its target is a
// loopback listener that accepts and never answers, so the exec waits there until it is interrupted.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TCPSocketListener } from "bun"
import { requireTool, runOk } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

let work: string
let silent: TCPSocketListener<undefined>
/** A second target, queued behind the first by --parallel 1: never dialled before the interrupt. */
let queued: TCPSocketListener<undefined>
let connected: () => void
const connection = new Promise<void>((resolve) => {
  connected = resolve
})

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-exec-interrupt-"))
  silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => connected(), data() {} } })
  queued = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
})

afterAll(async () => {
  silent?.stop(true)
  queued?.stop(true)
  await rm(work, { recursive: true, force: true })
})

test("SIGINT during exec exits 130 and names the targets the command may still run on, and until when, and those it never started on", async () => {
  const key = join(work, "id_ed25519")
  await runOk([requireTool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key])
  const target = `root@127.0.0.1:${silent.port}`
  const later = `root@127.0.0.1:${queued.port}`
  const flags = ["--targets", `${target},${later}`, "--parallel", "1", "--identity", key, "--trust-new-hosts"]
  flags.push("--timeout", "45")
  const child = Bun.spawn([process.execPath, MAIN, "exec", ...flags, "--", "sleep 100"], {
    env: {
      ...process.env,
      HOME: work,
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_URL: "",
      CHIMERA_TOKEN: "",
      CHIMERA_CONFIG_FILE: "",
      NO_COLOR: "1",
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  await connection
  await Bun.sleep(200)
  child.kill("SIGINT")
  const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()])
  // Before: the same status, and stderr empty.
  expect(code).toBe(130)
  expect(stderr).toContain(
    `interrupted: the command is not recorded, and it may still run on ${target} (no answer yet) until --timeout (45 s) kills it there; not started on ${later}`,
  )
}, 30_000)
