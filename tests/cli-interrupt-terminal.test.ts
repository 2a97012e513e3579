// Ctrl-C typed at a terminal while `chimera deploy` shows its spinner. The spinner (@clack/prompts)
// puts the terminal in raw mode, so the key never became SIGINT: @clack/core read it and exited 0,
// printing only "Canceled". An interrupted deploy then looked like a successful one to the shell,
// and the CLI never said what it left behind. Now the key is the signal, as on a cooked terminal:
// exit 130 and the message. The real CLI on a real terminal (`script`); the target is a loopback
// listener that never answers, so the deploy waits there until it is interrupted.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TCPSocketListener } from "bun"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { requireTool, runOk } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

let work: string
let silent: TCPSocketListener

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-interrupt-terminal-"))
  silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
})

afterAll(async () => {
  silent?.stop(true)
  await rm(work, { recursive: true, force: true })
})

test("Ctrl-C at a terminal during a deploy exits 130 and says what it leaves behind", async () => {
  const script = requireTool("script")
  const closure = await buildTestSystem(1, { tag: "interrupt-terminal" })
  const key = join(work, "id_ed25519")
  await runOk([requireTool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key])
  const target = `root@127.0.0.1:${silent.port}`
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
  const line = [process.execPath, MAIN, "deploy", "--targets", target, "--config", closure]
    .concat(["--identity", key, "--trust-new-hosts"])
    .map(q)
    .join(" ")
  const child = Bun.spawn([script, "-qec", `stty cols 200 rows 50; ${line}`, "/dev/null"], {
    env: {
      ...process.env,
      HOME: work,
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_URL: "",
      CHIMERA_TOKEN: "",
      CHIMERA_CONFIG_FILE: "",
      // A colour terminal: the spinner is drawn only where colour is (NO_COLOR gets progress lines).
      NO_COLOR: undefined,
      TERM: "xterm",
    },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  })
  // Typed once the spinner shows, as a person would.
  let seen = ""
  const reader = child.stdout.getReader()
  while (!seen.includes("building")) {
    const chunk = await reader.read()
    if (chunk.done) throw new Error(`the deploy ended before its spinner showed:\n${seen}`)
    seen += new TextDecoder().decode(chunk.value)
  }
  await Bun.sleep(300)
  child.stdin.write("\x03")
  await child.stdin.flush()
  const rest = (async () => {
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) return
      seen += new TextDecoder().decode(chunk.value)
    }
  })()
  const code = await child.exited
  await rest
  child.stdin.end()
  seen = Bun.stripANSI(seen)
  // Before: "Canceled" and 0, as if the deploy had done its work.
  expect(code).toBe(130)
  expect(seen).toContain("interrupted: the deploy is not recorded")
  // Interrupted while it planned (the target never answers): it says the node was never touched.
  expect(seen).toContain(`${target}: not activated, unchanged`)
}, 60_000)
