// Printing for people and for programs: `--json` prints exactly the data, nothing else; otherwise
// aligned tables and colour, which NO_COLOR (https://no-color.org) or a non-terminal turns off.
//
// Everything the CLI shows goes out through this file (`say`, `warn`, `printTable`, `printFields`,
// `printJson`), and that is where text from nodes and users is made safe for the terminal: control
// and format characters are shown escaped (protocol/terminal-text.ts), so a node cannot retitle,
// clear or forge lines on the admin's terminal through any command. Our own colours survive because
// `color` does not write escape sequences into the text: it writes a marker carrying a secret drawn at
// start, which foreign text cannot guess, and the marker becomes the colour only as the line is written.
import { randomBytes } from "node:crypto"
import { Writable } from "node:stream"
import { jsonSafe, terminalLine, terminalText } from "../../protocol/terminal-text.ts"
import { useColor } from "../../protocol/use-color.ts"

const SECRET = randomBytes(8).toString("hex")
const MARK = new RegExp(`\uE000${SECRET}:(\\d+)\uE001`, "g")
const _marker = (code: number) => `\uE000${SECRET}:${code}\uE001`
const paint = (code: number) => (s: string) => `${_marker(code)}${s}${_marker(0)}`
export const color = {
  green: paint(32),
  yellow: paint(33),
  red: paint(31),
  dim: paint(2),
  bold: paint(1),
  cyan: paint(36),
  magenta: paint(35),
  italic: paint(3),
  underline: paint(4),
}

/** What a line becomes on its way to `stream`: foreign control characters escaped, our markers made colours. */
function _render(text: string, stream: NodeJS.WriteStream = process.stdout): string {
  const colors = useColor(stream)
  return terminalText(text).replace(MARK, (_, code: string) => (colors ? `\x1b[${code}m` : ""))
}

/** Text as `say` would write it, for a prompt that writes it itself (promptStream). */
export const styled = (text: string) => _render(text)

/** Writes text (our words with values in them) to stdout; end it with a newline. */
export function say(text: string): void {
  process.stdout.write(_render(text))
}

/** Writes text to stderr: progress, warnings, errors. */
export function warn(text: string): void {
  process.stderr.write(_render(text, process.stderr))
}

/** A value shown inside a line: on one line, whatever newlines it holds. */
export const field = (value: string) => terminalLine(value)

export function printJson(data: unknown): void {
  process.stdout.write(`${jsonLine(data, 2)}\n`)
}

/** JSON text whose strings hold nothing a terminal acts on (C1, DEL, bidi are `\u` escapes too). */
export function jsonLine(data: unknown, indent?: number): string {
  return jsonSafe(JSON.stringify(data, null, indent))
}

const visible = (s: string) => Bun.stringWidth(s.replace(MARK, ""))

/** How many columns `text` takes on the screen: colour markers take none. */
export const visibleWidth = visible

export function printTable(headers: string[], rawRows: string[][]): void {
  const rows = rawRows.map((row) => row.map(field))
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))))
  const head = headers.map((h) => color.bold(h))
  say(`${tableLine(widths, head)}\n`)
  for (const row of rows) say(`${tableLine(widths, row)}\n`)
}

/**
 * One line of a table: each cell but the last padded to at least its column's width, two spaces
 * apart. For tables printed a row at a time (`--follow`), whose widths are fixed beforehand; cells
 * must already be `field`s.
 */
export function tableLine(widths: number[], cells: string[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(Math.max(0, (widths[i] ?? 0) - visible(c)))))
    .join("  ")
    .trimEnd()
}

export function printFields(fields: [string, string][]): void {
  const width = Math.max(...fields.map(([k]) => k.length))
  for (const [k, v] of fields) say(`${color.dim(k.padEnd(width))}  ${field(v)}\n`)
}

/** "4s ago", "3m ago", "2h ago": how long since an ISO time. */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return "never"
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.round(s / 60)}m ago`
  if (s < 86400) return `${Math.round(s / 3600)}h ago`
  return `${Math.round(s / 86400)}d ago`
}

const STATUS_COLOR: Record<string, (s: string) => string> = {
  healthy: color.green,
  drifted: color.yellow,
  healing: color.yellow,
  unknown: color.dim,
}

export const statusText = (status: string) => (STATUS_COLOR[status] ?? color.red)(status)

/** Each line of `text` prefixed by `name` and `mark` (`web-1 | …`), for output from many nodes. */
export function prefixed(name: string, text: string, mark: string): string {
  if (text === "") return ""
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n")
  return `${lines.map((l) => `${name} ${mark} ${field(l)}`).join("\n")}\n`
}

/**
 * The stream interactive prompts (@clack/prompts, node:readline) draw on: their own cursor and colour
 * sequences pass unchanged, so every foreign string handed to a prompt must be made safe with `field`
 * first. Output goes to stdout like everything the CLI shows.
 */
export const promptStream = new Writable({
  write(chunk: Buffer | string, _encoding, done) {
    process.stdout.write(chunk, () => done())
  },
})
// Prompts size themselves by the screen's, so the stream answers as the terminal it writes to.
Object.defineProperties(promptStream, {
  columns: { get: () => process.stdout.columns },
  rows: { get: () => process.stdout.rows },
  isTTY: { get: () => process.stdout.isTTY === true },
})

/**
 * A live region at the bottom of a colour terminal (a spinner, text still streaming in): `clear`
 * takes the cursor back to the first of its `rows` rows and erases from there down, so it can be
 * drawn again. Nothing is written when colours are off: plain output never rewrites what it printed.
 */
export const live = {
  clear(rows: number): void {
    if (rows <= 0 || !useColor()) return
    process.stdout.write(`\r${rows > 1 ? `\x1b[${rows - 1}A` : ""}\x1b[J`)
  },
  /** How many rows `text` (no trailing newline) takes on a screen `columns` wide. */
  rows(text: string, columns = process.stdout.columns || 80): number {
    const width = (line: string) => visible(terminalText(line))
    return text.split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(width(line) / columns)), 0)
  },
}
