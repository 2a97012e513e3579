// `chimera dash` in a real pseudo-terminal: a pane of a private tmux server (`tmux -L`) of a fixed
// size, read with capture-pane, keys sent with send-keys. The pane's shell says how the dashboard
// exited ("dash exited N") and stays, so a test can see what it left on the terminal. `startInShell`
// types the command at an interactive bash instead, with job control, for Ctrl+Z and `fg`.
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
  start(args: string[], opts?: PaneOptions): Promise<void>
  /**
   * Types `chimera dash ARGS` at an interactive bash (job control on, no line editing, so the terminal's
   * modes at its prompt are the ones the dashboard left) and waits for its first frame.
   */
  startInShell(args: string[], opts?: PaneOptions): Promise<void>
  /** The dashboard's process id: the pane's shell's child. */
  pid(): Promise<number>
  /** The pane's terminal modes (`stty -a`), as the next program run there gets them. */
  stty(): Promise<string>
  /**
   * Waits for the dashboard to exit with `status`, the terminal given back: normal screen, cursor
   * shown, canonical input with echo. After `startInShell`, asks the shell for the status first.
   */
  expectRestored(status: number): Promise<void>
}

interface PaneOptions {
  cols?: number
  rows?: number
  env?: Record<string, string>
}

/** A mode's name in `stty -a` output, on (icanon) or off (-icanon). */
export const ttyMode = (stty: string, mode: string) => new RegExp(`(^|\\s)${mode}(\\s|;|$)`, "m").test(stty)

export async function dashPane(env: () => Record<string, string>): Promise<DashPane> {
  requireTool("tmux")
  const socket = `chimera-dash-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const tmux = (...args: string[]) => runOk(["tmux", "-L", socket, ...args])
  // A session kept for the pane's life: killing the dashboard's session must not end the tmux server,
  // or the next test's new-session meets it exiting ("server exited unexpectedly").
  await tmux("-f", "/dev/null", "new-session", "-d", "-s", "keep", "cat")
  const screen = () => tmux("capture-pane", "-p", "-t", "dash")
  let inShell = false
  const commandLine = (args: string[], more: Record<string, string> = {}) =>
    [
      "env",
      ...Object.entries({ ...env(), ...more }).map(([k, v]) => `${k}=${v}`),
      process.execPath,
      MAIN,
      "dash",
      ...args,
    ]
      .map((a) => `'${a}'`)
      .join(" ")
  const newSession = async (shell: string, { cols = 120, rows = 30 }: PaneOptions) => {
    // A test that failed midway leaves its dashboard: the next one starts afresh.
    await run(["tmux", "-L", socket, "kill-session", "-t", "dash"])
    await tmux("-f", "/dev/null", "new-session", "-d", "-s", "dash", "-x", `${cols}`, "-y", `${rows}`, shell)
  }
  const firstFrame = () =>
    waitFor("the dashboard to draw", screen, (s) => s.includes("Chimera fleet") || s.includes("NODE"), 30_000)
  const pane: DashPane = {
    tmux,
    screen,
    flag: async (name) => (await tmux("display-message", "-p", "-t", "dash", `#{${name}}`)).trim(),
    async keys(...keys) {
      await tmux("send-keys", "-t", "dash", ...keys)
    },
    async start(args, opts = {}) {
      const shell = `${commandLine(args, opts.env)}; echo "dash exited $?"; exec cat`
      await newSession(shell, opts)
      await firstFrame()
    },
    async startInShell(args, opts = {}) {
      inShell = true
      await newSession("env PS1='$ ' bash --norc --noprofile --noediting -i", opts)
      await waitFor("the shell's prompt", screen, (s) => /^\$\s*$/m.test(s))
      await tmux("send-keys", "-t", "dash", "-l", commandLine(args, opts.env))
      await tmux("send-keys", "-t", "dash", "Enter")
      await firstFrame()
    },
    async pid() {
      const shell = await pane.flag("pane_pid")
      const child = (await runOk(["pgrep", "-P", shell])).trim().split("\n")[0] ?? ""
      expect(child).toMatch(/^\d+$/)
      return Number(child)
    },
    stty: async () => runOk(["stty", "-a", "-F", await pane.flag("pane_tty")]),
    async expectRestored(status) {
      if (inShell) {
        // Typed once the shell has its terminal back (not as keys to the dashboard), and so that the
        // line itself does not read "dash exited".
        const shell = await pane.flag("pane_pid")
        await waitFor(
          "the dashboard's process to end",
          async () => (await run(["pgrep", "-P", shell])).code,
          (c) => c === 1,
        )
        await tmux("send-keys", "-t", "dash", "-l", "printf 'dash %s %s\\n' exited $?\r")
      }
      const after = await waitFor("the dashboard to exit", screen, (s) => s.includes("dash exited"))
      expect(after).toContain(`dash exited ${status}`)
      expect(after).not.toContain("Chimera fleet")
      expect(await pane.flag("alternate_on")).toBe("0")
      expect(await pane.flag("cursor_flag")).toBe("1")
      const stty = await pane.stty()
      expect([ttyMode(stty, "icanon"), ttyMode(stty, "echo")]).toEqual([true, true])
      inShell = false
      await tmux("kill-session", "-t", "dash")
    },
    [Symbol.asyncDispose]: () => killTmuxServer(socket),
  }
  return pane
}
