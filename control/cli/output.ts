// Printing for people and for programs: `--json` prints exactly the data, nothing else; otherwise
// aligned tables and colour, which NO_COLOR (https://no-color.org) or a non-terminal turns off.
export const useColor = () => !process.env.NO_COLOR && process.stdout.isTTY === true && process.env.TERM !== "dumb"

const paint = (code: number) => (s: string) => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s)
export const color = { green: paint(32), yellow: paint(33), red: paint(31), dim: paint(2), bold: paint(1) }

export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`)
}

const visible = (s: string) => Bun.stringWidth(s)

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visible(c))))
      .join("  ")
      .trimEnd()
  process.stdout.write(`${line(headers.map((h) => color.bold(h)))}\n`)
  for (const row of rows) process.stdout.write(`${line(row)}\n`)
}

export function printFields(fields: [string, string][]): void {
  const width = Math.max(...fields.map(([k]) => k.length))
  for (const [k, v] of fields) process.stdout.write(`${color.dim(k.padEnd(width))}  ${v}\n`)
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
  return `${lines.map((l) => `${name} ${mark} ${l}`).join("\n")}\n`
}
