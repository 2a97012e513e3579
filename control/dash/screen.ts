// The terminal while the dashboard runs: the alternate screen, a hidden cursor and raw keyboard input
// on the way in; on the way out, whatever the way (q, Ctrl+C, SIGTERM, SIGHUP, SIGQUIT, a crash), the
// normal screen, the cursor and cooked input are given back, synchronously, so nothing is left
// half-restored when the process exits. Suspending (Ctrl+Z, SIGTSTP) gives the terminal back too, and
// `fg` (SIGCONT) takes it again and repaints: the shell that took it meanwhile reset its modes and
// drew on it. Frames are drawn by line: only the lines that differ from the last frame are rewritten,
// so a clock ticking in one row costs one row; a resize rewrites every row, with no clear.
import { writeSync } from "node:fs"
import { constants } from "node:os"

const ENTER = "\x1b[?1049h\x1b[?25l\x1b[2J"
const LEAVE = "\x1b[0m\x1b[?1049l\x1b[?25h"

/**
 * Signals that end the dashboard, with the terminal restored first. SIGUSR1 is among them: Bun does not
 * start an inspector on it, as Node does, but dies of it, and left the terminal raw on the alternate
 * screen.
 */
const ENDING: NodeJS.Signals[] = ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1"]

export interface Screen {
  size(): { cols: number; rows: number }
  /** Draws a frame, writing only the lines that changed since the last one. */
  draw(lines: string[]): void
  onKeys(listener: (input: string) => void): void
  /** `listener` draws a whole frame: after a resize, or a resume once suspended. */
  onRepaint(listener: () => void): void
  /**
   * Ctrl+Z, which raw mode delivers as a byte: the terminal is given back and the process group
   * stopped, as the terminal driver stops it in cooked mode (a wrapper such as `bun run` stops too, so
   * the shell sees the job stopped and takes the terminal); resumed, the terminal is taken again.
   */
  suspend(): void
  /** Leaves the alternate screen, shows the cursor, turns raw mode off; safe to call more than once. */
  restore(): void
}

export function openScreen(stdin: NodeJS.ReadStream = process.stdin, stdout: NodeJS.WriteStream = process.stdout) {
  let previous: string[] = []
  let restored = false
  // Whether the terminal is ours now: not once restored, nor while suspended.
  let entered = false
  const repaints: (() => void)[] = []
  const write = (s: string) => {
    try {
      writeSync((stdout as NodeJS.WriteStream & { fd: number }).fd, s)
    } catch {
      // The terminal is gone (SIGHUP): nothing left to draw on.
    }
  }

  const enter = () => {
    entered = true
    // Raw mode first: resumed in the background (`bg`), setting it stops the process (SIGTTOU)
    // before it draws over the shell's screen; `fg` later lets it go on.
    if (stdin.isTTY) stdin.setRawMode(true)
    write(ENTER)
  }
  const leave = () => {
    if (!entered) return
    entered = false
    if (stdin.isTTY) stdin.setRawMode(false)
    write(LEAVE)
  }
  const restore = () => {
    if (restored) return
    restored = true
    leave()
    stdin.pause()
  }
  // 128 + the signal's number, as a shell reports a process the signal ended.
  const onEnding = (signal: NodeJS.Signals) => () => {
    restore()
    process.exit(128 + constants.signals[signal])
  }
  // The terminal taken again after a stop; on SIGCONT too, for a SIGSTOP (which no listener sees)
  // after which the shell reset the terminal's modes.
  const resume = () => {
    if (restored) return
    enter()
    previous = []
    for (const repaint of repaints) repaint()
  }
  // The stop is SIGTSTP with no listener, so the kernel decides as it does for the key in cooked
  // mode: it stops the process (group), or discards the signal where no shell could resume it (an
  // orphaned process group: `ssh -t host chimera dash`, `sh -c` in a tmux pane). Once kill returns,
  // the process was resumed (fg) or never stopped: either way the terminal is taken again.
  const stop = (pid: number) => {
    if (restored) return
    leave()
    process.off("SIGTSTP", onStop)
    process.kill(pid, "SIGTSTP")
    process.on("SIGTSTP", onStop)
    resume()
  }
  const onStop = () => stop(process.pid)
  const crash = (error: unknown) => {
    restore()
    process.stderr.write(`chimera dash: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
  const signals: [NodeJS.Signals, () => void][] = [
    ...ENDING.map((signal): [NodeJS.Signals, () => void] => [signal, onEnding(signal)]),
    ["SIGTSTP", onStop],
    ["SIGCONT", resume],
  ]
  process.on("exit", restore)
  process.on("uncaughtException", crash)
  process.on("unhandledRejection", crash)
  for (const [signal, handler] of signals) process.on(signal, handler)

  enter()
  stdin.setEncoding("utf8")
  stdin.resume()

  const screen: Screen = {
    size: () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 }),
    draw(lines) {
      if (!entered) return
      let out = ""
      lines.forEach((l, i) => {
        if (previous[i] !== l) out += `\x1b[${i + 1};1H${l}\x1b[K`
      })
      for (let i = lines.length; i < previous.length; i++) out += `\x1b[${i + 1};1H\x1b[K`
      previous = lines
      if (out) write(out)
    },
    onKeys(listener) {
      stdin.on("data", (chunk: string | Buffer) => listener(String(chunk)))
    },
    onRepaint(listener) {
      repaints.push(listener)
      // Every row is rewritten to its end (EL), so the old frame goes without clearing the screen
      // first: a cleared screen flashes blank, once per SIGWINCH while a window edge is dragged.
      stdout.on("resize", () => {
        previous = []
        listener()
      })
    },
    // Pid 0 is this process's group.
    suspend: () => stop(0),
    restore() {
      restore()
      process.off("exit", restore)
      process.off("uncaughtException", crash)
      process.off("unhandledRejection", crash)
      for (const [signal, handler] of signals) process.off(signal, handler)
    },
  }
  return screen
}
