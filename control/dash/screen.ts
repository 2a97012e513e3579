// The terminal while the dashboard runs: the alternate screen, a hidden cursor and raw keyboard input
// on the way in; on the way out, whatever the way (q, Ctrl+C, SIGTERM, SIGHUP, a crash), the normal
// screen, the cursor and cooked input are given back, synchronously, so nothing is left half-restored
// when the process exits. Frames are drawn by line: only the lines that differ from the last frame are
// rewritten, so a clock ticking in one row costs one row; a resize rewrites every row, with no clear.
import { writeSync } from "node:fs"

const ENTER = "\x1b[?1049h\x1b[?25l\x1b[2J"
const LEAVE = "\x1b[0m\x1b[?1049l\x1b[?25h"

export interface Screen {
  size(): { cols: number; rows: number }
  /** Draws a frame, writing only the lines that changed since the last one. */
  draw(lines: string[]): void
  onKeys(listener: (input: string) => void): void
  onResize(listener: () => void): void
  /** Leaves the alternate screen, shows the cursor, turns raw mode off; safe to call more than once. */
  restore(): void
}

export function openScreen(stdin: NodeJS.ReadStream = process.stdin, stdout: NodeJS.WriteStream = process.stdout) {
  let previous: string[] = []
  let restored = false
  const write = (s: string) => {
    try {
      writeSync((stdout as NodeJS.WriteStream & { fd: number }).fd, s)
    } catch {
      // The terminal is gone (SIGHUP): nothing left to draw on.
    }
  }

  const restore = () => {
    if (restored) return
    restored = true
    if (stdin.isTTY) stdin.setRawMode(false)
    stdin.pause()
    write(LEAVE)
  }
  // 128 + the signal's number, as a shell reports a process the signal ended.
  const onSignal = (code: number) => () => {
    restore()
    process.exit(code)
  }
  const crash = (error: unknown) => {
    restore()
    process.stderr.write(`chimera dash: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
  const signals: [NodeJS.Signals, () => void][] = [
    ["SIGTERM", onSignal(143)],
    ["SIGHUP", onSignal(129)],
  ]
  process.on("exit", restore)
  process.on("uncaughtException", crash)
  process.on("unhandledRejection", crash)
  for (const [signal, handler] of signals) process.on(signal, handler)

  write(ENTER)
  if (stdin.isTTY) stdin.setRawMode(true)
  stdin.setEncoding("utf8")
  stdin.resume()

  const screen: Screen = {
    size: () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 }),
    draw(lines) {
      if (restored) return
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
    onResize(listener) {
      // Every row is rewritten to its end (EL), so the old frame goes without clearing the screen
      // first: a cleared screen flashes blank, once per SIGWINCH while a window edge is dragged.
      stdout.on("resize", () => {
        previous = []
        listener()
      })
    },
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
