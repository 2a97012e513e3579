// `chimera dash` in a real pseudo-terminal: a pane of a private tmux server (`tmux -L`) of a fixed
// size, read with capture-pane, keys sent with send-keys. The pane's shell says how the dashboard
// exited ("dash exited N") and stays, so a test can see what it left on the terminal.
import { expect } from "bun:test"
import { join } from "node:path"
import { killTmuxServer } from "./tmux.ts"
import { requireTool, run, runOk } from "./tools.ts"
import { waitFor } from "./wait.ts"

const MAIN = join(import.meta.dir, "../../control/main.ts")

export interface DashPane extends AsyncDisposable {
  tmux(...args: string[]): Promise<string>
  /** The pane's text as a person sees it. */
  screen(): Promise<string>
  /** A tmux format flag of the pane (alternate_on, cursor_flag). */
  flag(name: string): Promise<string>
  keys(...keys: string[]): Promise<void>
  /** Starts `chimera dash ARGS` in session `dash`, and waits for its first frame. */
  start(args: string[], opts?: { cols?: number; rows?: number; env?: Record<string, string> }): Promise<void>
  /** Waits for the dashboard to exit with `status`, the terminal given back: normal screen, cursor shown. */
  expectRestored(status: number): Promise<void>
}

export async function dashPane(env: () => Record<string, string>): Promise<DashPane> {
  requireTool("tmux")
  const socket = `chimera-dash-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const tmux = (...args: string[]) => runOk(["tmux", "-L", socket, ...args])
  // A session kept for the pane's life: killing the dashboard's session must not end the tmux server,
  // or the next test's new-session meets it exiting ("server exited unexpectedly").
  await tmux("-f", "/dev/null", "new-session", "-d", "-s", "keep", "cat")
  const screen = () => tmux("capture-pane", "-p", "-t", "dash")
  const pane: DashPane = {
    tmux,
    screen,
    flag: async (name) => (await tmux("display-message", "-p", "-t", "dash", `#{${name}}`)).trim(),
    async keys(...keys) {
      await tmux("send-keys", "-t", "dash", ...keys)
    },
    async start(args, { cols = 120, rows = 30, env: more = {} } = {}) {
      const command = [
        "env",
        ...Object.entries({ ...env(), ...more }).map(([k, v]) => `${k}=${v}`),
        process.execPath,
        MAIN,
        "dash",
        ...args,
      ]
        .map((a) => `'${a}'`)
        .join(" ")
      const shell = `${command}; echo "dash exited $?"; exec cat`
      // A test that failed midway leaves its dashboard: the next one starts afresh.
      await run(["tmux", "-L", socket, "kill-session", "-t", "dash"])
      await tmux("-f", "/dev/null", "new-session", "-d", "-s", "dash", "-x", `${cols}`, "-y", `${rows}`, shell)
      await waitFor("the dashboard to draw", screen, (s) => s.includes("Chimera fleet") || s.includes("NODE"), 30_000)
    },
    async expectRestored(status) {
      const after = await waitFor("the dashboard to exit", screen, (s) => s.includes("dash exited"))
      expect(after).toContain(`dash exited ${status}`)
      expect(after).not.toContain("Chimera fleet")
      expect(await pane.flag("alternate_on")).toBe("0")
      expect(await pane.flag("cursor_flag")).toBe("1")
      await tmux("kill-session", "-t", "dash")
    },
    [Symbol.asyncDispose]: () => killTmuxServer(socket),
  }
  return pane
}
