// `chimera dash` as a person on call meets it, in a real tmux pane: a control plane (a child process,
// so it can be killed, frozen and restarted) with simulated agents, watched from a narrow terminal.
// The dashboard says at once when the control plane is gone or hangs, and comes back by itself.

import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { freePort, type SpawnedControlPlane, spawnControlPlane } from "./support/control-plane.ts"
import { type DashPane, dashPane } from "./support/dash-pane.ts"
import { SIM_CLOSURE, simAgent } from "./support/sim-agent.ts"
import { waitFor } from "./support/wait.ts"

let cp: SpawnedControlPlane
let viewerToken: string
let pane: DashPane

const env = () => ({ CHIMERA_URL: cp.url, CHIMERA_TOKEN: viewerToken, NO_COLOR: "1", CHIMERA_CONFIG_FILE: "" })

beforeAll(async () => {
  cp = await spawnControlPlane(freePort())
  for (const id of ["db-1", "web-1", "web-2"]) await (await simAgent(cp, id)).heartbeat()
  const res = await cp.api("/api/tokens", { method: "POST", body: JSON.stringify({ name: "dash", role: "viewer" }) })
  viewerToken = ((await res.json()) as { token: string }).token
  pane = await dashPane(env)
}, 60_000)

afterAll(async () => {
  await pane?.[Symbol.asyncDispose]()
  await cp?.stop()
})

const listed = (s: string) => /^> db-1\s/m.test(s) && /^ {2}web-2\s/m.test(s)
const selectedRow = (s: string) => /^> \S+\s/m.test(s)
const header = (s: string) => s.split("\n")[0] ?? ""
const footer = (s: string) => s.trimEnd().split("\n").at(-1) ?? ""

describe("chimera dash when the control plane goes away", () => {
  test("at 80 columns it says so in the header and footer, and recovers by itself: killed, then hung", async () => {
    await pane.start([], { cols: 80, rows: 24 })
    await waitFor("the nodes", pane.screen, listed, 30_000)

    await cp.kill()
    // Before: the error came after the keys and the URL, cut to "cannot" at 80 columns, and the header
    // went on counting the old rows as if they were live.
    const lost = await waitFor("the lost control plane to show", pane.screen, (s) =>
      footer(s).startsWith("cannot reach the control plane"),
    )
    expect(header(lost)).toMatch(/^Chimera fleet {2}STALE: last answer \d+s ago {2}3 nodes/)
    expect(lost).toMatch(/^> db-1\s/m)

    await cp.restart()
    const back = await waitFor(
      "the dashboard to recover",
      pane.screen,
      (s) => !s.includes("STALE") && listed(s),
      30_000,
    )
    expect(footer(back)).toStartWith("↑↓ j/k move")

    // Frozen: connections open, nothing answers. Before: the read waited forever and the screen stayed calm.
    process.kill(cp.proc.pid, "SIGSTOP")
    try {
      const hung = await waitFor(
        "the hung control plane to show",
        pane.screen,
        (s) => footer(s).startsWith(`the control plane at ${cp.url} did not answer within 10 s`),
        20_000,
      )
      expect(header(hung)).toContain("STALE: last answer")
    } finally {
      process.kill(cp.proc.pid, "SIGCONT")
    }
    await waitFor("the dashboard to recover", pane.screen, (s) => !s.includes("STALE") && listed(s), 30_000)
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 120_000)

  test("a control plane that never answered is not an empty fleet", async () => {
    await pane.start([], { cols: 80, rows: 8, env: { CHIMERA_URL: `http://127.0.0.1:${freePort()}` } })
    const dead = await waitFor("the error", pane.screen, (s) => footer(s).startsWith("cannot reach the control plane"))
    // Before: "Chimera fleet  0 nodes", as if the fleet were empty.
    expect(header(dead).trimEnd()).toBe("Chimera fleet  NO ANSWER YET")
    expect(dead).toContain("(no data)")
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 60_000)

  test("with a long interval the event stream dropping and coming back is enough to notice and catch up", async () => {
    // A poll far longer than the test: only the stream can tell.
    await pane.start(["--interval", "600"], { cols: 80, rows: 24 })
    await waitFor("the nodes", pane.screen, listed, 30_000)
    await cp.kill()
    await waitFor("the lost control plane to show", pane.screen, (s) => s.includes("STALE: last answer"))
    await cp.restart()
    await (await simAgent(cp, "web-3")).heartbeat()
    const back = await waitFor(
      "the dashboard to recover, with the node enrolled meanwhile",
      pane.screen,
      (s) => !s.includes("STALE") && /^ {2}web-3\s/m.test(s),
      30_000,
    )
    expect(header(back)).toStartWith("Chimera fleet  4 nodes")
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 120_000)
})

describe("chimera dash with more nodes than rows", () => {
  test("Page Down and Page Up move a screenful, End and Home (and G, g) to the last and first node", async () => {
    const apps = Array.from({ length: 12 }, (_, i) => `app-${String(i + 1).padStart(2, "0")}`)
    await Promise.all([...apps, "zeta-1"].map(async (id) => (await simAgent(cp, id)).heartbeat()))
    // 8 rows: the header, the column names, 5 nodes, the footer.
    await pane.start([], { rows: 8 })
    const selected = async () => (await pane.screen()).match(/^> (\S+)/m)?.[1]
    await waitFor("the first node selected", selected, (s) => s === "app-01", 30_000)
    // Before: these keys did nothing; reaching the end of 1,000 nodes took 999 presses of j.
    const steps: [string, string][] = [
      ["End", "zeta-1"],
      ["Home", "app-01"],
      ["NPage", "app-06"],
      ["NPage", "app-11"],
      ["PPage", "app-06"],
      ["G", "zeta-1"],
      ["g", "app-01"],
    ]
    for (const [key, node] of steps) {
      await pane.keys(key)
      await waitFor(`${key} to select ${node}`, selected, (s) => s === node)
    }
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 60_000)
})

describe("chimera dash on a terminal that cannot move its cursor", () => {
  test("TERM=dumb prints the plain table once, never the alternate screen or cursor moves", async () => {
    // Before: a dumb terminal got the full-screen escapes as text.
    await pane.start([], { env: { TERM: "dumb" } })
    const out = await waitFor("the dashboard to exit", pane.screen, (s) => s.includes("dash exited"))
    expect(out).toMatch(/^NODE\s+STATUS\s+DESIRED\s+CURRENT\s+HEARTBEAT\s+REBOOT\s+DRIFT$/m)
    expect(out).toMatch(/^db-1\s/m)
    expect(out).toContain("dash exited 0")
    expect(out).not.toContain("Chimera fleet")
    expect(await pane.flag("alternate_on")).toBe("0")
    expect(await pane.flag("cursor_flag")).toBe("1")
  }, 60_000)
})

describe("chimera dash with long node names", () => {
  test("names longer than the column keep both ends, so nodes that differ only at the end stay apart", async () => {
    const long = (n: number) => `eu-west-1-frontend-fleet-canary-node-${n}`
    await Promise.all([1, 2].map(async (n) => (await simAgent(cp, long(n))).heartbeat()))
    await pane.start(["--interval", "600"])
    await pane.keys("/")
    await pane.tmux("send-keys", "-t", "dash", "-l", "canary")
    // Before: both read "eu-west-1-frontend-fleet", the rest cut off.
    const shown = await waitFor("the two long names", pane.screen, (s) => s.includes("(2 shown)"))
    const names = [...shown.matchAll(/^[> ] (\S+)\s+(?:healthy|unknown|unreachable)/gm)].map((m) => m[1])
    expect(names).toEqual(["eu-west-1-fr…nary-node-1", "eu-west-1-fr…nary-node-2"])
    await pane.keys("Escape", "q")
    await pane.expectRestored(0)
  }, 60_000)
})

describe("chimera dash at 40 columns", () => {
  test("the header counts trouble first, so a narrow terminal cuts the healthy count, not the unreachable one", async () => {
    const ok = await simAgent(cp, "aa-ok")
    await ok.heartbeat()
    expect(
      (await cp.api("/api/nodes/aa-ok/desired", { method: "PUT", body: JSON.stringify({ closure: SIM_CLOSURE }) }))
        .status,
    ).toBe(200)
    // Kept healthy while the test looks: its heartbeats say every second.
    const beat = setInterval(() => void ok.heartbeat().catch(() => {}), 500)
    try {
      await pane.start(["--interval", "0.5"], { cols: 40, rows: 12 })
      // Before: "Chimera fleet  20 nodes  1 healthy  19 u", the problems cut off at the edge.
      const shown = await waitFor(
        "a healthy node among others",
        pane.screen,
        (s) => /^> aa-ok\s+healthy/m.test(s) && /\d+ nodes/.test(header(s)),
      )
      expect(header(shown)).toMatch(/^Chimera fleet {2}\d+ nodes {2}\d+ (unknown|unreachable)/)
      expect(header(shown)).not.toContain("healthy  ")
    } finally {
      clearInterval(beat)
    }
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 60_000)
})

describe("chimera dash when the terminal is resized", () => {
  test("each size gets a whole frame, without clearing the screen first (no blank flash per resize)", async () => {
    await pane.start(["--interval", "600"])
    await waitFor("the nodes", pane.screen, selectedRow, 30_000)
    const bytes = join(await mkdtemp(join(tmpdir(), "chimera-dash-")), "pane.out")
    await pane.tmux("pipe-pane", "-t", "dash", "-o", `cat >> '${bytes}'`)
    for (const [cols, rows] of [
      [100, 20],
      [60, 15],
      [40, 12],
      [41, 13],
      [120, 30],
    ] as const) {
      await pane.tmux("resize-window", "-t", "dash", "-x", `${cols}`, "-y", `${rows}`)
      // The whole frame at the new size: header on the first row, footer on the last, nothing left over.
      await waitFor(`a frame at ${cols}x${rows}`, pane.screen, (s) => {
        const lines = s.replace(/\n$/, "").split("\n")
        return (
          lines.length === rows &&
          header(s).startsWith("Chimera fleet") &&
          selectedRow(s) &&
          (lines.at(-1) ?? "").startsWith("↑↓")
        )
      })
    }
    await pane.tmux("pipe-pane", "-t", "dash")
    const written = await Bun.file(bytes).text()
    expect(written).toContain("Chimera fleet")
    // Before: "\x1b[2J" on every resize.
    expect(written).not.toContain("\x1b[2J")
    await rm(dirname(bytes), { recursive: true })
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 60_000)
})
