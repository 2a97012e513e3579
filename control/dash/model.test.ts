import { describe, expect, test } from "bun:test"
import { terminalLine as sanitize } from "../../protocol/terminal-text.ts"
import { type DashRow, initialState, parseKeys, press, visibleRows, withRows } from "./model.ts"
import { frame } from "./view.ts"

const row = (name: string, status = "healthy"): DashRow => ({
  name,
  status,
  desired: "abc",
  current: "abc",
  heartbeat: null,
  drift: "",
  reboot: false,
  detail: () => [
    ["node", name],
    ["status", status],
  ],
  data: { id: name, status },
})

const state = () => withRows(initialState("test"), [row("a"), row("b", "drifted"), row("c")])

describe("dashboard keys", () => {
  test("arrows, j/k, Enter, /, Esc, q and Ctrl+C from raw terminal input", () => {
    expect(parseKeys("\x1b[A\x1b[Bjk\r/\x1b\x7f\x03q")).toEqual([
      "up",
      "down",
      { char: "j" },
      { char: "k" },
      "enter",
      { char: "/" },
      "escape",
      "backspace",
      "quit",
      { char: "q" },
    ])
    // Ctrl+Z and Ctrl+\ are bytes in raw mode too: suspend, and end as SIGQUIT would.
    expect(parseKeys("\x1a\x1c")).toEqual(["suspend", "abort"])
    // Other escape sequences (function keys, right arrow) are skipped whole, not read as letters.
    expect(parseKeys("\x1b[C\x1b[15~j")).toEqual([{ char: "j" }])
  })

  test("Page Up/Down, Home and End as xterm, the VT220, rxvt and application mode send them", () => {
    expect(parseKeys("\x1b[5~\x1b[6~\x1b[H\x1bOH\x1b[1~\x1b[7~\x1b[F\x1bOF\x1b[4~\x1b[8~")).toEqual([
      "pageup",
      "pagedown",
      ...Array(4).fill("home"),
      ...Array(4).fill("end"),
    ])
    const s = withRows(
      initialState("test"),
      Array.from({ length: 25 }, (_, i) => row(`n${String(i).padStart(2, "0")}`)),
    )
    expect(press(s, "pagedown", 10).selected).toBe("n10")
    expect(press(press(s, "end"), "pageup", 10).selected).toBe("n14")
    expect(press(press(s, "end"), "home").selected).toBe("n00")
  })

  test("the selection moves within the visible rows and follows its node when rows change", () => {
    let s = state()
    expect(s.selected).toBe("a")
    s = press(press(press(s, { char: "j" }), "down"), "down")
    expect(s.selected).toBe("c")
    s = press(s, "up")
    expect(s.selected).toBe("b")
    s = withRows(s, [row("b"), row("z")])
    expect(s.selected).toBe("b")
    s = withRows(s, [row("z")])
    expect(s.selected).toBe("z")
  })

  test("/ edits a filter (q is a letter there), Enter keeps it, Esc clears it", () => {
    let s = press(state(), { char: "/" })
    for (const ch of "drq") s = press(s, { char: ch })
    s = press(s, "backspace")
    expect(s.filter).toBe("dr")
    expect(s.quit).toBe(false)
    s = press(s, "enter")
    expect(visibleRows(s).map((r) => r.name)).toEqual(["b"])
    expect(press(s, "escape").filter).toBe("")
    expect(press(s, { char: "q" }).quit).toBe(true)
  })

  test("q and Esc close a node's detail and leave the dashboard running; Ctrl+C quits from it", () => {
    const open = press(state(), "enter")
    for (const back of [{ char: "q" }, "escape"] as const)
      expect(press(open, back)).toMatchObject({ detailOpen: false, quit: false })
    expect(press(open, "quit").quit).toBe(true)
  })
})

describe("dashboard frame", () => {
  test("exactly the terminal's rows, none wider than its columns, the detail pane when open", () => {
    const s = press(press(state(), "down"), "enter")
    const lines = frame(s, 40, 12, Date.now(), false)
    expect(lines).toHaveLength(12)
    for (const l of lines) expect(Bun.stringWidth(l)).toBeLessThanOrEqual(40)
    expect(lines.some((l) => l.startsWith("> b"))).toBe(true)
    expect(lines.some((l) => l.startsWith("── b"))).toBe(true)
    const colour = frame(s, 40, 12, Date.now(), true)
    for (const l of colour) expect(Bun.stringWidth(Bun.stripANSI(l))).toBeLessThanOrEqual(40)
    expect(colour.join("\n")).toContain("\x1b[")
    expect(lines.join("\n")).not.toContain("\x1b[")
  })

  test("the pane shows the selected node's detail, follows the selection, and is built for that node only", () => {
    const built: string[] = []
    const counted = (name: string, status = "healthy"): DashRow => ({
      ...row(name, status),
      detail: () => {
        built.push(name)
        return row(name, status).detail()
      },
    })
    let s = press(withRows(initialState("test"), [counted("a"), counted("b", "drifted"), counted("c")]), "enter")
    const pane = () => {
      const lines = frame(s, 60, 14, Date.now(), false).map((l) => l.trimEnd())
      return lines.slice(lines.findIndex((l) => l.startsWith("── ")))
    }
    expect(pane().slice(0, 3)).toEqual([expect.stringMatching(/^── a ─+$/), "  node    a", "  status  healthy"])
    s = press(s, "down")
    expect(pane().slice(0, 3)).toEqual([expect.stringMatching(/^── b ─+$/), "  node    b", "  status  drifted"])
    // A read brings new rows: the pane follows its node, and still only its node's detail is built.
    built.length = 0
    s = withRows(s, [counted("b", "healing"), counted("c"), counted("d")])
    expect(pane().slice(1, 3)).toEqual(["  node    b", "  status  healing"])
    expect(new Set(built)).toEqual(new Set(["b"]))
    s = press(s, "escape")
    built.length = 0
    frame(s, 60, 14, Date.now(), false)
    expect(built).toEqual([])
  })

  // A newcomer saw "0 nodes … (no nodes)" flash up before the first answer: nothing is known yet.
  test("before the first answer it says it is loading, not that the fleet is empty", () => {
    const before = frame(initialState("test"), 80, 6, Date.now(), false)
    expect(before.slice(0, 3).map((l) => l.trimEnd())).toEqual([
      "Chimera fleet  loading…",
      expect.stringMatching(/^\s+NODE\s+STATUS/),
      "  (loading…)",
    ])
    const empty = frame(withRows(initialState("test"), []), 80, 6, Date.now(), false)
    expect([empty[0]?.trimEnd(), empty[2]?.trimEnd()]).toEqual(["Chimera fleet  0 nodes", "  (no nodes)"])
  })

  test("the live view has the columns of the plain table (`--once`), REBOOT among them", () => {
    const s = withRows(initialState("test"), [{ ...row("a"), reboot: true, drift: "profile" }, row("b")])
    const lines = frame(s, 120, 8, Date.now(), false)
    expect(lines[1]).toMatch(/^\s+NODE\s+STATUS\s+DESIRED\s+CURRENT\s+HEARTBEAT\s+REBOOT\s+DRIFT$/)
    const a = lines.find((l) => /^. a /.test(l)) ?? ""
    expect(a.trimEnd()).toMatch(/-\s+needed\s+profile$/)
    const head = lines[1] ?? ""
    expect(a.indexOf("needed")).toBe(head.indexOf("REBOOT"))
    expect(a.indexOf("profile")).toBe(head.indexOf("DRIFT"))
  })

  test("a name of wide characters keeps the next column in place (padded by columns, not code units)", () => {
    const lines = frame(withRows(initialState("test"), [row("東京-1"), row("osaka-1")]), 100, 6, Date.now(), false)
    const statusAt = (l: string | undefined) => Bun.stringWidth((l ?? "").slice(0, (l ?? "").indexOf("healthy")))
    expect(statusAt(lines[2])).toBe(statusAt(lines[3]))
  })

  test("node text cannot carry escape sequences or reorder what is shown", () => {
    expect(sanitize("a\x1b]0;x\x07b\u009b2J\u202ec")).toBe("a\\x1b]0;x\\x07b\\u009b2J\\u202ec")
  })
})
