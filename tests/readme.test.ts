// The README is executable: its ```console sessions run here, in order, as a newcomer would type them
// after the README's set-up, in one terminal (tests/support/shell-session.ts) whose PATH holds only
// the system's directories until the set-up's own `export PATH=…` line adds the checkout's tools, with
// a fresh HOME, and every line the README shows must be among what the command printed
// (tests/support/readme-match.ts says what may differ). The testbed, the control plane and the agent
// are the real ones the README starts; `NODE# ` commands run in the shell the README opens on that
// node. Only what must not collide with other runs on this machine is moved, and mapped back before
// comparing: the testbed's directory (/tmp/chimera-testbed), the control plane's port (8080), HOME.
// With CHIMERA_README_CAPTURE=FILE, what every command printed is written to FILE, to update the README.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test"
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./support/control-plane.ts"
import { createLineMatcher } from "./support/readme-match.ts"
import { opensNodeShell, type ReadmeStep, readmeSteps } from "./support/readme-steps.ts"
import { startShell } from "./support/shell-session.ts"
import { readState, teardownFromState } from "./support/testbed-state.ts"
import { requireTool, run } from "./support/tools.ts"

setDefaultTimeout(900_000)

const REPO = join(import.meta.dir, "..")
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/** What a step may take at most: a deploy builds and switches three nodes on a loaded machine. */
const STEP_MS = 300_000
/** How long "a moment later" may be, on a loaded machine. */
const MOMENT_MS = 90_000

/** The tmux server of the README's sessions (`chimera run`, CLI sessions), under this run's TMUX_TMPDIR. */
const TMUX_SOCKET = `chimera-readme-${process.pid}`
let work = ""
let testbedDir = ""

afterAll(async () => {
  // Whatever the README left running if a step failed: the testbed's nodes, then the temp dirs.
  const state = testbedDir ? await readState(testbedDir).catch(() => null) : null
  if (state) await teardownFromState(state)
  if (work) await run(["tmux", "-L", TMUX_SOCKET, "kill-server"], { env: { TMUX_TMPDIR: work } })
  if (work) await rm(work, { recursive: true, force: true })
})

test("every console session in the README runs as written and prints what the README shows", async () => {
  for (const tool of ["bash", "nix-build", "nsenter", "unshare", "sshd", "curl", "tmux"]) requireTool(tool)
  const readme = await readFile(join(REPO, "README.md"), "utf8")
  const steps = readmeSteps(readme)
  // The set-up's own line puts the checkout's tools on PATH (npm ci has run: node_modules is there).
  const setUp = /^```sh\n(?:.*\n)*?(export PATH=.*)\n(?:.*\n)*?```$/m.exec(readme)?.[1]
  if (!setUp) throw new Error("README: its set-up (a ```sh block) has no `export PATH=…` line")
  expect(steps.length).toBeGreaterThan(20)
  work = await mkdtemp(join(tmpdir(), "chimera-readme-"))
  testbedDir = join(work, "testbed")
  const home = join(work, "home")
  const port = freePort()
  const capture = process.env.CHIMERA_README_CAPTURE
  if (capture) await writeFile(capture, "")

  // Moved for this run (see the header), and mapped back in what is printed.
  const toReadme: [string, string][] = [
    [testbedDir, "/tmp/chimera-testbed"],
    [home, "/root"],
    [`127.0.0.1:${port}`, "127.0.0.1:8080"],
  ]
  const fromReadme = (command: string) => toReadme.reduce((c, [actual, shown]) => c.replaceAll(shown, actual), command)
  const asReadme = (text: string) => toReadme.reduce((t, [actual, shown]) => t.replaceAll(actual, shown), text)

  await using shell = startShell({
    cwd: REPO,
    env: {
      PATH: SYSTEM_PATH,
      HOME: home,
      NO_COLOR: "1",
      LANG: "C.UTF-8",
      CHIMERA_TESTBED_DIR: testbedDir,
      CHIMERA_WEB_PORT: String(port),
      CHIMERA_URL: `http://127.0.0.1:${port}`,
      CHIMERA_TMUX_SOCKET: TMUX_SOCKET,
      TMUX_TMPDIR: work,
    },
  })
  await shell.run(`mkdir -p ${home}`, 10_000)
  const path = await shell.run(`${setUp}\necho "$PATH"`, 10_000)
  expect(path.output.trim()).toBe(`${REPO}/node_modules/.bin:${REPO}/bin:${SYSTEM_PATH}`)
  const matcher = createLineMatcher()
  const where: string[] = ["$"]
  const failures: string[] = []

  for (const [i, step] of steps.entries()) {
    const here = where.at(-1)
    const at = `README line ${step.line} (${step.where === "$" ? "" : `${step.where}# `}${step.command})`
    if (step.where !== here) throw new Error(`${at}: typed in ${step.where}'s shell, but the session is in ${here}'s`)
    const command = matcher.paste(fromReadme(step.command))
    const node = opensNodeShell(step)
    if (node || (step.where !== "$" && step.command.trim() === "exit")) {
      await shell.enter(command, 60_000)
      if (node) where.push(node)
      else where.pop()
      continue
    }
    const from = shell.length
    const background = command.trimEnd().endsWith("&")
    const deadline = performance.now() + (step.eventually || background ? MOMENT_MS : 0)
    let result = await shell.run(command, STEP_MS)
    for (;;) {
      // A job started in the background goes on printing after its command returns.
      const printed = asReadme(background ? shell.since(from).replace(/\n@@end [^@\n]*@@\n/, "") : result.output)
      const missing = matcher.missing(step.expected, printed)
      const next = steps[i + 1] as ReadmeStep | undefined
      const codeOk = result.code === 0 || next?.command.trim() === "echo $?"
      const done = missing.length === 0 && codeOk
      if (done || performance.now() > deadline) {
        if (capture) await appendFile(capture, `${step.where}> ${step.command}\n${printed}\n`)
        if (done) break
        const why = codeOk
          ? `these lines are not among what it printed:\n  ${missing.join("\n  ")}`
          : `exit ${result.code}`
        // Capturing (to update the README) goes on, and fails at the end.
        if (!capture) throw new Error(`${at}: ${why}\nprinted:\n${printed}`)
        failures.push(`${at}: ${why}`)
        break
      }
      await Bun.sleep(500)
      if (!background) result = await shell.run(command, STEP_MS)
    }
  }
  expect(failures).toEqual([])
  expect(where).toEqual(["$"])
}, 900_000)
