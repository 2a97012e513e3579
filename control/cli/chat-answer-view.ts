// How one assistant turn appears in `chimera chat`: a spinner while the model thinks or a tool runs,
// then the answer as it streams in. Finished markdown blocks are printed rendered (chat-markdown.ts);
// the block still arriving is shown as a dim draft under them and redrawn with every token, so text
// appears as the model writes it and settles into its rendered form when the block is complete.
// On a plain terminal (NO_COLOR, not a terminal) there is no spinner and no draft, nothing is ever
// rewritten: each block is printed once, complete, so a pipe or a log reads cleanly.
//
// The spinner is our own, drawn like clack's: clack's spinner ends the process on Ctrl+C, and here
// Ctrl+C must cancel the answer and keep the chat.
import type { ToolEvent } from "../../protocol/ai.ts"
import { blocks, type RenderOptions } from "./chat-markdown.ts"
import { MarkdownStream } from "./chat-markdown-stream.ts"
import { color, field, live, say } from "./output.ts"

export const ASSISTANT = "Chimera> "
const INDENT = " ".repeat(ASSISTANT.length)
const FRAMES = ["◒", "◐", "◓", "◑"]

export interface AnswerView {
  /** Shows the spinner with `message` until the next text arrives. */
  waiting(message: string): void
  token(text: string): void
  tool(event: ToolEvent): void
  /** A line of our own inside the answer (cancelled, an error). */
  note(text: string): void
  /** The turn is over: the rest of the text is printed and the spinner stopped. */
  end(): void
}

export interface ViewOptions {
  /** Spinner and draft (a colour terminal). */
  live: boolean
  /** The screen's width, or Infinity when output is not a terminal. */
  columns: number
  /** The screen's height (the draft never takes more). */
  rows: number
  colors: boolean
}

/** For --json: the exchange is collected, nothing is drawn. */
export const silentView: AnswerView = { waiting() {}, token() {}, tool() {}, note() {}, end() {} }

const describeArgs = (args: Record<string, unknown>) =>
  Object.entries(args)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ")

export function createAnswerView(o: ViewOptions | "silent"): AnswerView {
  if (o === "silent") return silentView
  const markdown = new MarkdownStream()
  const render: RenderOptions = { width: Math.max(20, o.columns - INDENT.length), colors: o.colors }
  let started = false
  let liveRows = 0
  let spinner: ReturnType<typeof setInterval> | null = null

  const prefix = () => {
    const p = started ? INDENT : color.magenta(color.bold(ASSISTANT))
    started = true
    return p
  }
  const clearLive = () => {
    live.clear(liveRows)
    liveRows = 0
  }
  const stopSpinner = () => {
    if (spinner) clearInterval(spinner)
    spinner = null
  }
  const drawLive = (text: string) => {
    clearLive()
    if (text === "") return
    say(text)
    liveRows = live.rows(text)
  }
  let printedBlock = false
  const print = (lines: string[]) => {
    if (lines.length === 0) return
    if (printedBlock) say("\n")
    printedBlock = true
    for (const line of lines) say(`${prefix()}${line}\n`)
  }
  const drawDraft = () => {
    if (!o.live) return
    const draft = markdown.draft.replaceAll("\t", "  ").replace(/\n+$/, "")
    if (draft.trim() === "") return drawLive("")
    const label = started ? INDENT : ASSISTANT
    const lines = draft.split("\n").map((l) => field(l))
    // Only what fits on the screen can be redrawn: rows scrolled off the top cannot be erased, so a long
    // block still arriving (a big code block) shows its last lines, under a mark for the rest.
    const room = Math.max(2, o.rows - 3) - (printedBlock ? 1 : 0)
    const shown = tailLines(lines, room, o.columns - INDENT.length)
    const text = shown.map((l, i) => `${i === 0 && shown.length === lines.length ? label : INDENT}${color.dim(l)}`)
    drawLive(`${printedBlock ? "\n" : ""}${text.join("\n")}`)
  }

  const waiting = (message: string) => {
    if (!o.live) return
    stopSpinner()
    let frame = 0
    const draw = () => {
      drawLive(`${color.magenta(FRAMES[frame % FRAMES.length] ?? "")}  ${field(message)}…`)
      frame++
    }
    draw()
    spinner = setInterval(draw, 120)
  }

  return {
    waiting,
    token(text) {
      stopSpinner()
      clearLive()
      for (const t of markdown.push(text)) print(blocks([t], render))
      drawDraft()
    },
    tool(event) {
      stopSpinner()
      clearLive()
      // What the model was doing is shown before the tool's line, complete.
      for (const t of markdown.end()) print(blocks([t], render))
      const what = `${color.bold(field(event.tool_name))} ${color.dim(field(describeArgs(event.tool_args)))}`
      if (event.status === "started") waiting(`running ${event.tool_name}`)
      else if (event.status === "succeeded") print([`${color.green("✓")} ${what}`])
      else if (event.status === "pending_approval")
        print([`${color.yellow("?")} ${what} ${color.dim("(needs approval)")}`])
      else print([`${color.red("✗")} ${what} ${color.red(event.status)}${reason(event.result)}`])
    },
    note(text) {
      stopSpinner()
      clearLive()
      print([color.dim(text)])
    },
    end() {
      stopSpinner()
      clearLive()
      for (const t of markdown.end()) print(blocks([t], render))
    },
  }
}

/** The last lines of `lines` that fit in `rows` screen rows `width` wide, "…" first when some are left out. */
export function tailLines(lines: string[], rows: number, width: number): string[] {
  const rowsOf = (l: string) => Math.max(1, Math.ceil(Bun.stringWidth(l) / width))
  if (lines.reduce((n, l) => n + rowsOf(l), 0) <= rows) return lines
  const kept: string[] = []
  let used = 1 // the "…" line
  for (let i = lines.length - 1; i >= 0 && used < rows; i--) {
    const line = lines[i] ?? ""
    const need = rowsOf(line)
    if (used + need <= rows) {
      kept.unshift(line)
      used += need
    } else {
      // The end of a line too long for the room left.
      kept.unshift(`…${line.slice(-((rows - used) * width - 1))}`)
      used = rows
    }
  }
  return ["…", ...kept]
}

const reason = (result: unknown) =>
  typeof result === "string" && result !== ""
    ? `: ${field(result.length > 200 ? `${result.slice(0, 200)}…` : result)}`
    : ""
