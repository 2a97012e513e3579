// What the dashboard shows and how keys change it, with no terminal in sight: the rows (one per node,
// whichever source they came from), the selection, the filter and whether the detail pane is open.
// `press` is a pure function of the state and one key, so the keys are easy to reason about.

/** One node as the dashboard shows it; every string has already been sanitised. */
export interface DashRow {
  name: string
  status: string
  desired: string
  current: string
  heartbeat: string | null
  drift: string
  reboot: boolean
  /**
   * Label and value pairs for the detail pane, built when the pane is drawn: only the selected node's
   * shows, and building every node's on each read was a third of a read's CPU at 1,000 nodes.
   */
  detail: () => [string, string][]
  /** The row as data, for --json: whole store paths, booleans and times, no text made for the screen. */
  data: Record<string, unknown>
}

export interface DashState {
  rows: DashRow[]
  /** The selected node's name: it stays selected when rows move or the filter changes. */
  selected: string | null
  filter: string
  editingFilter: boolean
  detailOpen: boolean
  /** Where the rows come from and how fresh they are, for the footer. */
  source: string
  error: string | null
  /** When rows last came (ms since the epoch): while the source fails, how old the rows shown are. */
  updatedAt: number | null
  /** The source has answered once (rows or an error): before, an empty table says nothing yet. */
  loaded: boolean
  quit: boolean
}

export const initialState = (source: string): DashState => ({
  rows: [],
  selected: null,
  filter: "",
  editingFilter: false,
  detailOpen: false,
  source,
  error: null,
  updatedAt: null,
  loaded: false,
  quit: false,
})

export function visibleRows(state: DashState): DashRow[] {
  const f = state.filter.toLowerCase()
  if (f === "") return state.rows
  return state.rows.filter(
    (r) => r.name.toLowerCase().includes(f) || r.status.toLowerCase().includes(f) || r.drift.toLowerCase().includes(f),
  )
}

/** The selected row's index among the visible ones (the first row when the selection is hidden). */
export function selectedIndex(state: DashState): number {
  const rows = visibleRows(state)
  const i = rows.findIndex((r) => r.name === state.selected)
  return Math.max(i, 0)
}

export type Key =
  | "up"
  | "down"
  | "pageup"
  | "pagedown"
  | "home"
  | "end"
  | "enter"
  | "escape"
  | "backspace"
  | "quit"
  | "suspend"
  | "abort"
  | { char: string }

/**
 * The escape sequences of keys beyond the letters: terminals send Home and End in several ways (xterm's
 * `ESC [ H`, the VT220's `ESC [ 1 ~`, rxvt's `ESC [ 7 ~`, application mode's `ESC O H`).
 */
const SEQUENCES: [string, Key][] = [
  ["\x1b[A", "up"],
  ["\x1bOA", "up"],
  ["\x1b[B", "down"],
  ["\x1bOB", "down"],
  ["\x1b[5~", "pageup"],
  ["\x1b[6~", "pagedown"],
  ["\x1b[H", "home"],
  ["\x1bOH", "home"],
  ["\x1b[1~", "home"],
  ["\x1b[7~", "home"],
  ["\x1b[F", "end"],
  ["\x1bOF", "end"],
  ["\x1b[4~", "end"],
  ["\x1b[8~", "end"],
]

/** Turns one chunk of raw terminal input into keys (arrows come as escape sequences). */
export function parseKeys(input: string): Key[] {
  const keys: Key[] = []
  for (let i = 0; i < input.length; i++) {
    const rest = input.slice(i)
    const known = SEQUENCES.find(([seq]) => rest.startsWith(seq))
    if (known) {
      keys.push(known[1])
      i += known[0].length - 1
    } else if (rest.startsWith("\x1b[")) {
      // Another CSI sequence (other arrows, function keys): skip it whole.
      const end = rest.slice(2).search(/[\x40-\x7e]/)
      i += end < 0 ? rest.length : end + 2
    } else {
      const ch = input[i] as string
      if (ch === "\x1b") keys.push("escape")
      else if (ch === "\r" || ch === "\n") keys.push("enter")
      else if (ch === "\x7f" || ch === "\b") keys.push("backspace")
      // Raw mode delivers the keys that make signals in cooked mode as bytes: Ctrl+C, Ctrl+Z, Ctrl+\.
      else if (ch === "\x03") keys.push("quit")
      else if (ch === "\x1a") keys.push("suspend")
      else if (ch === "\x1c") keys.push("abort")
      else keys.push({ char: ch })
    }
  }
  return keys
}

function move(state: DashState, by: number): DashState {
  const rows = visibleRows(state)
  if (rows.length === 0) return state
  const i = Math.min(rows.length - 1, Math.max(0, selectedIndex(state) + by))
  return { ...state, selected: rows[i]?.name ?? null }
}

/** The state after `key`; `page` is how many rows the table shows, the step of Page Up and Page Down. */
export function press(state: DashState, key: Key, page = 10): DashState {
  if (key === "quit") return { ...state, quit: true }
  if (state.editingFilter) {
    if (key === "enter") return { ...state, editingFilter: false }
    if (key === "escape") return { ...state, editingFilter: false, filter: "" }
    if (key === "backspace") return { ...state, filter: state.filter.slice(0, -1) }
    if (typeof key === "object" && key.char >= " ") return { ...state, filter: (state.filter + key.char).slice(0, 64) }
    return state
  }
  if (key === "up") return move(state, -1)
  if (key === "down") return move(state, 1)
  if (key === "pageup") return move(state, -page)
  if (key === "pagedown") return move(state, page)
  if (key === "home") return move(state, -state.rows.length)
  if (key === "end") return move(state, state.rows.length)
  if (key === "enter") return { ...state, detailOpen: !state.detailOpen }
  if (key === "escape") return state.detailOpen ? { ...state, detailOpen: false } : { ...state, filter: "" }
  if (typeof key !== "object") return state
  // In a node's detail q goes back, as Esc does: only the list's q ends the dashboard (Ctrl+C always does).
  if (key.char === "q") return state.detailOpen ? { ...state, detailOpen: false } : { ...state, quit: true }
  if (key.char === "j") return move(state, 1)
  if (key.char === "k") return move(state, -1)
  if (key.char === "g") return move(state, -state.rows.length)
  if (key.char === "G") return move(state, state.rows.length)
  if (key.char === "/") return { ...state, editingFilter: true, detailOpen: false }
  return state
}

/** New rows from a source; the selection stays on the same node, or the first one when it is gone. */
export function withRows(state: DashState, rows: DashRow[], at = Date.now()): DashState {
  const selected = rows.some((r) => r.name === state.selected) ? state.selected : (rows[0]?.name ?? null)
  return { ...state, rows, selected, error: null, updatedAt: at, loaded: true }
}
