// `chimera dash` and the signals an operator sends it, in a real tmux pane. The dashboard holds the
// terminal raw, on the alternate screen, with the cursor hidden: whatever the signal, the terminal must
// come back usable (normal screen, cursor, canonical input with echo). Ctrl+Z, typed at an interactive
// bash, suspends it as any full-screen program is suspended, and `fg` brings it back, redrawn and
// answering keys; SIGQUIT (and Ctrl+\), SIGUSR1 (which ends a Bun process), SIGTERM and SIGHUP end it
// with 128 + the signal's number, as a shell reports a process the signal killed.

import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { constants } from "node:os"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type DashPane, dashPane, ttyMode } from "./support/dash-pane.ts"
import { simAgent } from "./support/sim-agent.ts"
import { runOk } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

let cp: TestControlPlane
let viewerToken: string
let pane: DashPane

beforeAll(async () => {
  cp = await startInProcess()
  for (const id of ["db-1", "web-1"]) await (await simAgent(cp, id)).heartbeat()
  const res = await cp.api("/api/tokens", { method: "POST", body: JSON.stringify({ name: "dash", role: "viewer" }) })
  viewerToken = ((await res.json()) as { token: string }).token
  pane = await dashPane(() => ({
    CHIMERA_URL: cp.url,
    CHIMERA_TOKEN: viewerToken,
    NO_COLOR: "1",
    CHIMERA_CONFIG_FILE: "",
  }))
}, 60_000)

afterAll(async () => {
  await pane?.[Symbol.asyncDispose]()
  await cp?.stop()
})

const listed = (s: string) => /^> db-1\s/m.test(s) && /^ {2}web-1\s/m.test(s)
/** Starts the dashboard (at an interactive bash, or `sh -c` with no job control), and gives its pid once it lists the nodes. */
async function startListed(where: "shell" | "sh -c"): Promise<number> {
  await (where === "shell" ? pane.startInShell([]) : pane.start([]))
  await waitFor("the nodes", pane.screen, listed)
  return pane.pid()
}

const processState = async (pid: number) => (await runOk(["ps", "-o", "stat=", "-p", String(pid)])).trim()

/** The dashboard stopped, and the terminal the shell got back is usable: no alternate screen, a cursor, cooked input. */
async function expectSuspended(pid: number) {
  const shown = await waitFor("the shell to report the job stopped", pane.screen, (s) => /Stopped/.test(s))
  expect(shown).not.toContain("Chimera fleet")
  expect(await processState(pid)).toStartWith("T")
  expect(await pane.flag("alternate_on")).toBe("0")
  expect(await pane.flag("cursor_flag")).toBe("1")
  const stty = await pane.stty()
  expect([ttyMode(stty, "icanon"), ttyMode(stty, "echo")]).toEqual([true, true])
}

/** `fg`: the whole frame again, keys read raw (j moves the selection without echo or Enter). */
async function expectResumed() {
  await pane.keys("-l", "fg\r")
  await waitFor("the dashboard to redraw after fg", pane.screen, listed)
  expect(await pane.flag("alternate_on")).toBe("1")
  const stty = await pane.stty()
  expect([ttyMode(stty, "icanon"), ttyMode(stty, "echo")]).toEqual([false, false])
  await pane.keys("j")
  await waitFor("j to move the selection", pane.screen, (s) => /^> web-1\s/m.test(s))
}

describe("chimera dash suspended and resumed", () => {
  test("Ctrl+Z gives the shell a usable terminal; fg redraws the dashboard and its keys work", async () => {
    const pid = await startListed("shell")
    // Before: raw mode took Ctrl+Z as a byte and nothing happened; the dashboard kept the terminal.
    await pane.keys("C-z")
    await expectSuspended(pid)
    await expectResumed()
    // Suspended and resumed a second time, from the list where it was left.
    await pane.keys("C-z")
    await expectSuspended(pid)
    await pane.keys("-l", "fg\r")
    await waitFor("the selection kept", pane.screen, (s) => /^> web-1\s/m.test(s))
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 60_000)

  test("SIGTSTP from kill does the same as Ctrl+Z", async () => {
    const pid = await startListed("shell")
    // Before: the process stopped with the alternate screen on and the cursor hidden.
    process.kill(pid, "SIGTSTP")
    await expectSuspended(pid)
    // `bg` cannot run it behind the shell: it stops again (SIGTTOU) before drawing over the prompt.
    await pane.keys("-l", "bg\r")
    // bash marks the job running as it sends SIGCONT, and stopped only once it stops again.
    const jobs = async () => {
      await pane.keys("-l", "jobs\r")
      await Bun.sleep(200)
      return (await pane.screen()).split("$ jobs").at(-1) ?? ""
    }
    await waitFor("the job to stop again", jobs, (s) => /Stopped/.test(s))
    expect(await pane.screen()).not.toContain("Chimera fleet")
    expect(await pane.flag("alternate_on")).toBe("0")
    expect(await processState(pid)).toStartWith("T")
    await expectResumed()
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 60_000)
})

describe("chimera dash where no shell could resume it", () => {
  // `sh -c` in a pane is an orphaned process group, as a command run by `ssh -t` is: the terminal
  // driver discards Ctrl+Z there, so the dashboard must not stop itself for good either.
  test("Ctrl+Z changes nothing: the dashboard keeps the terminal and answers its keys", async () => {
    const pid = await startListed("sh -c")
    await pane.keys("C-z")
    await pane.keys("j")
    await waitFor("j to move the selection", pane.screen, (s) => /^> web-1\s/m.test(s))
    expect(await processState(pid)).not.toStartWith("T")
    expect(await pane.flag("alternate_on")).toBe("1")
    expect(ttyMode(await pane.stty(), "icanon")).toBe(false)
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 30_000)
})

describe("chimera dash ended by a signal", () => {
  for (const signal of ["SIGQUIT", "SIGUSR1", "SIGHUP"] as const)
    test(`${signal} restores the terminal and exits ${128 + constants.signals[signal]}`, async () => {
      process.kill(await startListed("sh -c"), signal)
      await pane.expectRestored(128 + constants.signals[signal])
    }, 30_000)

  test("Ctrl+\\ ends it as SIGQUIT does, at an interactive shell", async () => {
    await startListed("shell")
    await pane.keys("C-\\")
    await pane.expectRestored(131)
  }, 30_000)
})
