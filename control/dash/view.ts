// One frame of the dashboard as lines of text, exactly as many as the terminal has rows, each cut to
// its width: the header with counts by status, the node table (the selected row marked with `>` and,
// in colour, shown reversed), the detail pane of the selected node when open, and a footer with the
// keys or the filter being typed. Colour is optional (NO_COLOR, --once to a file); without it nothing
// is lost, since every state is also spelt out in text.
import { ago } from "../cli/output.ts"
import { type DashRow, type DashState, selectedIndex, visibleRows } from "./model.ts"

/** A run of text and the SGR parameters that style it ("" for none). */
type Seg = [text: string, style: string]

const STATUS_STYLE: Record<string, string> = {
  healthy: "32",
  ok: "32",
  drifted: "33",
  healing: "33",
  "runtime-drift": "33",
  unknown: "2",
}
const statusStyle = (s: string) => STATUS_STYLE[s] ?? "31"

function cut(text: string, width: number): string {
  if (Bun.stringWidth(text) <= width) return text
  let out = ""
  for (const ch of text) {
    if (Bun.stringWidth(out + ch) > width) break
    out += ch
  }
  return out
}

/** Joins segments into one line of at most `cols` columns; `pad` fills it to `cols` (a selection bar). */
function line(segs: Seg[], cols: number, color: boolean, pad = false, lineStyle = ""): string {
  let left = cols
  let out = ""
  for (const [text, style] of segs) {
    if (left <= 0) break
    const t = cut(text, left)
    left -= Bun.stringWidth(t)
    const sgr = [lineStyle, style].filter(Boolean).join(";")
    out += color && sgr ? `\x1b[${sgr}m${t}\x1b[0m` : t
  }
  if (pad && left > 0) out += color && lineStyle ? `\x1b[${lineStyle}m${" ".repeat(left)}\x1b[0m` : " ".repeat(left)
  return out
}

/** `text` in `width` columns, kept whole at both ends: nodes of one fleet often differ only in their last characters. */
function cutMiddle(text: string, width: number): string {
  if (Bun.stringWidth(text) <= width) return text
  const head = cut(text, Math.ceil((width - 1) / 2))
  const room = width - 1 - Bun.stringWidth(head)
  const chars = [...text]
  let tail = ""
  for (let ch = chars.pop(); ch !== undefined && Bun.stringWidth(ch + tail) <= room; ch = chars.pop()) tail = ch + tail
  return `${head}…${tail}`
}

/** Padded by columns, not UTF-16 units, so a wide character does not push the next column over. */
const pad = (text: string, width: number) => text + " ".repeat(Math.max(0, width - Bun.stringWidth(text)))
const cell = (text: string, width: number) => pad(cut(text, width), width)

interface Widths {
  name: number
  status: number
}

function widths(rows: DashRow[]): Widths {
  return {
    name: Math.min(24, Math.max(4, ...rows.map((r) => Bun.stringWidth(r.name)))),
    status: Math.max(6, ...rows.map((r) => r.status.length)),
  }
}

function rowSegs(r: DashRow, w: Widths, now: number, marked: boolean): Seg[] {
  return [
    [marked ? "> " : "  ", ""],
    [`${pad(cutMiddle(r.name, w.name), w.name)}  `, ""],
    [cell(r.status, w.status), statusStyle(r.status)],
    [`  ${cell(r.desired, 12)}  ${cell(r.current, 12)}  ${cell(r.heartbeat ? ago(r.heartbeat, now) : "-", 9)}  `, ""],
    // The same columns as the plain table of `--once`.
    [cell(r.reboot ? "needed" : "", 6), r.reboot ? "33" : ""],
    [`  ${r.drift}`, r.drift ? "33" : ""],
  ]
}

function header(state: DashState, shown: number, now: number): Seg[] {
  const counts = new Map<string, number>()
  for (const r of state.rows) counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
  if (!state.loaded)
    return [
      ["Chimera fleet", "1"],
      ["  loading…", "2"],
    ]
  const segs: Seg[] = [["Chimera fleet", "1"]]
  // First, before counts that may be old: a person on call must not read a lost control plane as calm.
  if (state.error) {
    const since = state.updatedAt === null ? null : new Date(state.updatedAt).toISOString()
    segs.push(["  ", ""], [since ? `STALE: last answer ${ago(since, now)}` : "NO ANSWER YET", "1;31"])
    // Never answered: nothing is known of the fleet, "0 nodes" would say it is empty.
    if (!since) return segs
  }
  segs.push([`  ${state.rows.length} ${state.rows.length === 1 ? "node" : "nodes"}`, ""])
  if (shown !== state.rows.length) segs.push([` (${shown} shown)`, ""])
  // Trouble first, the calm statuses last: a narrow terminal cuts the header's end, and "77
  // unreachable" must not be what it cuts.
  const calm = (status: string) => (statusStyle(status) === "32" ? 2 : status === "unknown" ? 1 : 0)
  const ordered = [...counts].sort(([a], [b]) => calm(a) - calm(b) || a.localeCompare(b))
  for (const [status, n] of ordered) segs.push(["  ", ""], [`${n} ${status}`, statusStyle(status)])
  return segs
}

function footer(state: DashState): Seg[] {
  if (state.editingFilter)
    return [
      ["/", "1"],
      [state.filter, ""],
      ["_", "7"],
      ["   Enter keep · Esc clear", "2"],
    ]
  const keys = state.detailOpen
    ? "↑↓ j/k move · Esc/q back · / filter · Ctrl+C quit"
    : "↑↓ j/k move · Enter detail · / filter · q quit"
  // The error leads: after the keys it fell off the edge of an 80-column terminal.
  const segs: Seg[] = state.error ? [[`${state.error}   `, "31"]] : []
  segs.push([keys, "2"])
  if (state.filter) segs.push([`   filter: ${state.filter}`, ""])
  segs.push([`   ${state.source}`, "2"])
  return segs
}

/** The open pane's lines, built here for the selected node only (never for every row of a read). */
const paneOf = (state: DashState): { row: DashRow; lines: [string, string][] } | undefined => {
  const row = state.detailOpen ? visibleRows(state)[selectedIndex(state)] : undefined
  return row && { row, lines: row.detail() }
}

const paneHeight = (lines: number | undefined, height: number) =>
  lines === undefined ? 0 : Math.min(lines + 1, Math.max(3, Math.floor(height / 2)))

const tableHeight = (paneLines: number | undefined, height: number) =>
  Math.max(1, height - 3 - paneHeight(paneLines, height))

/** How many rows of the table a terminal `height` rows high shows: what Page Down moves by. */
export function pageSize(state: DashState, height: number): number {
  return tableHeight(paneOf(state)?.lines.length, height)
}

export function frame(state: DashState, cols: number, height: number, now: number, color: boolean): string[] {
  const rows = visibleRows(state)
  const selected = selectedIndex(state)
  const w = widths(state.rows)
  const pane = paneOf(state)
  const page = tableHeight(pane?.lines.length, height)
  // Keep the selection in view: scroll the table by whole pages.
  const first = Math.floor(selected / page) * page

  const out: string[] = [line(header(state, rows.length, now), cols, color)]
  const head = `  ${cell("NODE", w.name)}  ${cell("STATUS", w.status)}  ${cell("DESIRED", 12)}  ${cell("CURRENT", 12)}  ${cell("HEARTBEAT", 9)}  ${cell("REBOOT", 6)}  DRIFT`
  out.push(line([[head, "1"]], cols, color))
  for (let i = first; i < first + page; i++) {
    const r = rows[i]
    const empty = !state.loaded ? "  (loading…)" : state.error ? "  (no data)" : "  (no nodes)"
    if (!r) out.push(i === 0 ? line([[empty, "2"]], cols, color) : "")
    else out.push(line(rowSegs(r, w, now, i === selected), cols, color, i === selected, i === selected ? "7" : ""))
  }
  if (pane) {
    out.push(
      line(
        [
          [`── ${pane.row.name} `, "1"],
          ["─".repeat(cols), "2"],
        ],
        cols,
        color,
      ),
    )
    const label = Math.max(...pane.lines.map(([k]) => k.length))
    for (const [k, v] of pane.lines.slice(0, paneHeight(pane.lines.length, height) - 1))
      out.push(
        line(
          [
            [`  ${k.padEnd(label)}  `, "2"],
            [v, ""],
          ],
          cols,
          color,
        ),
      )
  }
  while (out.length < height - 1) out.push("")
  out.length = height - 1
  out.push(line(footer(state), cols, color))
  return out
}

/** The plain table of `--once` and of a stdout that is not a terminal. */
export function table(rows: DashRow[], now: number): string[][] {
  return rows.map((r) => [
    r.name,
    r.status,
    r.desired,
    r.current,
    r.heartbeat ? ago(r.heartbeat, now) : "-",
    r.reboot ? "needed" : "",
    r.drift,
  ])
}
