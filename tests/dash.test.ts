// `chimera dash` in a real tmux (fixed window size), read with capture-pane: it follows a real control
// plane, shows a node turn drifted as its agent reports it (a real node credential on the agent API),
// moves to it with j, opens its detail with Enter (q and Esc go back from it), quits with q and leaves the terminal as it found
// it: alternate screen left, cursor shown. Also: --once prints a plain table, and node-provided
// strings cannot put escape sequences on the screen.

import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { hasControlCharacters } from "../protocol/terminal-text.ts"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type DashPane, dashPane } from "./support/dash-pane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const GEN = heartbeatBody("x").system.current
const OTHER = "/nix/store/0c5k6m3hq9x1w2b4v7n8p0r1s2d3f4g5-chimera-test-system-2"

let cp: TestControlPlane
let viewerToken: string
const credentials = new Map<string, string>()
let pane: DashPane

function heartbeat(nodeId: string, system: { profile: string; current: string; booted: string }) {
  return call(cp, credentials.get(nodeId) ?? "", "POST", `/api/agent/${nodeId}/heartbeat`, {
    ...heartbeatBody(nodeId),
    system,
  })
}

beforeAll(async () => {
  cp = await startInProcess()
  pane = await dashPane(env)
  for (const id of ["web-1", "web-2"]) {
    credentials.set(id, await enrollNode(cp, id))
    expect((await heartbeat(id, { profile: GEN, current: GEN, booted: GEN })).status).toBe(200)
    expect((await call(cp, cp.adminToken, "PUT", `/api/nodes/${id}/desired`, { closure: GEN })).status).toBe(200)
  }
  const res = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "dash", role: "viewer" })
  viewerToken = ((await res.json()) as { token: string }).token
})

afterAll(async () => {
  await pane?.[Symbol.asyncDispose]()
  await cp?.stop()
})

const env = () => ({ CHIMERA_URL: cp.url, CHIMERA_TOKEN: viewerToken, NO_COLOR: "1", CHIMERA_CONFIG_FILE: "" })
const tmux = (...args: string[]) => pane.tmux(...args)
const screen = () => pane.screen()
const paneFlag = (flag: string) => pane.flag(flag)
const startDash = (args: string[]) => pane.start(args)
const expectRestored = (status: number) => pane.expectRestored(status)

describe("chimera dash", () => {
  test("follows the control plane live, moves, opens a detail, quits with the terminal restored", async () => {
    // A poll far longer than the test: the change below can only arrive through the event stream.
    await startDash(["--interval", "600"])

    const first = await waitFor(
      "the dashboard to list both nodes healthy",
      screen,
      (s) => /^> web-1\s+healthy/m.test(s) && /^ {2}web-2\s+healthy/m.test(s),
      30_000,
    )
    expect(first).toContain("Chimera fleet  2 nodes")
    expect(await paneFlag("alternate_on")).toBe("1")
    expect(await paneFlag("cursor_flag")).toBe("0")

    // web-2's agent finds it switched to another system by hand and says so.
    expect((await heartbeat("web-2", { profile: OTHER, current: OTHER, booted: GEN })).status).toBe(200)
    const report = {
      seq: 1,
      at: new Date().toISOString(),
      type: "drift.detected",
      data: { kinds: ["profile-drift"], desired: GEN, system: { profile: OTHER, current: OTHER, booted: GEN } },
    }
    const sent = await call(cp, credentials.get("web-2") ?? "", "POST", "/api/agent/web-2/reports", {
      reports: [report],
    })
    expect(sent.status).toBe(200)
    const drifted = await waitFor("web-2 to show drifted", screen, (s) => /^ {2}web-2\s+drifted/m.test(s), 30_000)
    expect(drifted).toMatch(/web-2\s+drifted\s+\S+\s+0c5k6m3hq9x1.*profile-drift/)
    expect(drifted).toContain("1 drifted  1 healthy")

    await tmux("send-keys", "-t", "dash", "j")
    await waitFor("the selection to move to web-2", screen, (s) => /^> web-2\s+drifted/m.test(s))
    await tmux("send-keys", "-t", "dash", "Enter")
    const detail = await waitFor("web-2's detail pane", screen, (s) => s.includes("── web-2"))
    expect(detail).toMatch(new RegExp(`current\\s+${OTHER}`))
    expect(detail).toMatch(new RegExp(`desired\\s+${GEN}`))
    expect(detail).toMatch(/booted\s+\S+\s+\(reboot needed\)/)

    await tmux("send-keys", "-t", "dash", "/")
    await tmux("send-keys", "-t", "dash", "-l", "web-1")
    await waitFor(
      "the filter to leave web-1 alone",
      screen,
      (s) => s.includes("(1 shown)") && !/web-2\s+drifted/.test(s),
    )
    await tmux("send-keys", "-t", "dash", "Escape")
    await waitFor("the filter to clear", screen, (s) => /web-2\s+drifted/.test(s))

    await tmux("send-keys", "-t", "dash", "q")
    await expectRestored(0)
  }, 90_000)

  test("q and Esc in a node's detail go back to the list, whose q quits; the hints say which is which", async () => {
    await startDash([])
    await waitFor("the list", screen, (s) => /^> web-1\s/m.test(s) && s.includes("Enter detail · / filter · q quit"))
    for (const back of ["q", "Escape"]) {
      await tmux("send-keys", "-t", "dash", "Enter")
      const detail = await waitFor(`web-1's detail (to leave with ${back})`, screen, (s) => s.includes("── web-1"))
      expect(detail).toContain("Esc/q back · / filter · Ctrl+C quit")
      await tmux("send-keys", "-t", "dash", back)
      // Before: q in the detail ended the dashboard ("dash exited 0").
      const list = await waitFor(`the list again after ${back}`, screen, (s) => !s.includes("── web-1"))
      expect(list).toContain("Chimera fleet")
      expect(list).not.toContain("dash exited")
      expect(list).toMatch(/^> web-1\s/m)
      expect(list).toContain("Enter detail · / filter · q quit")
    }
    await tmux("send-keys", "-t", "dash", "q")
    await expectRestored(0)
  }, 90_000)

  test("Ctrl+C and SIGTERM leave the terminal restored too", async () => {
    await startDash([])
    await tmux("send-keys", "-t", "dash", "C-c")
    await expectRestored(0)

    await startDash([])
    process.kill(await pane.pid(), "SIGTERM")
    await expectRestored(143)
  }, 90_000)

  test("--once prints a plain table; a node's hostile strings reach the screen without escapes", async () => {
    const hostile = "evil"
    credentials.set(hostile, await enrollNode(cp, hostile))
    // The API refuses control characters where a node names itself; what it does take (a heal's error
    // text) reaches the dashboard escaped.
    const refused = await call(cp, credentials.get(hostile) ?? "", "POST", `/api/agent/${hostile}/heartbeat`, {
      ...heartbeatBody(hostile),
      hostname: "x\u001b]0;pwned\u0007\u001b[2J",
      agentVersion: "1\u009b31m",
    })
    expect(refused.status).toBe(422)
    const res = await call(
      cp,
      credentials.get(hostile) ?? "",
      "POST",
      `/api/agent/${hostile}/heartbeat`,
      heartbeatBody(hostile),
    )
    expect(res.status).toBe(200)
    // A revoked node is shown so, not as its last heartbeat left it.
    const gone = await enrollNode(cp, "gone")
    expect((await call(cp, gone, "POST", "/api/agent/gone/heartbeat", heartbeatBody("gone"))).status).toBe(200)
    expect((await call(cp, cp.adminToken, "POST", "/api/nodes/gone/revoke")).status).toBe(200)
    const once = await run([process.execPath, MAIN, "dash", "--once"], { env: env() })
    expect(once.stderr).toBe("")
    expect(once.code).toBe(0)
    const lines = once.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^NODE\s+STATUS\s+DESIRED\s+CURRENT\s+HEARTBEAT\s+REBOOT\s+DRIFT$/)
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ["evil", "unknown"],
      ["gone", "revoked"],
      ["web-1", "healthy"],
      ["web-2", "drifted"],
    ])
    const json = await run([process.execPath, MAIN, "dash", "--once", "--json"], { env: env() })
    // Data, as `nodes list --json` gives it: whole paths and booleans, not the table's cut hashes.
    const { nodes } = JSON.parse(json.stdout) as { nodes: Record<string, unknown>[] }
    const listed = JSON.parse((await run([process.execPath, MAIN, "nodes", "list", "--json"], { env: env() })).stdout)
    expect(nodes.map(({ drift: _, ...n }) => n)).toEqual(listed.nodes)
    expect(nodes.find((n) => n.id === "web-2")).toMatchObject({ drift: ["profile-drift"], status: "drifted" })
    expect(nodes.find((n) => n.id === "gone")).toMatchObject({ revoked: true })
    expect(hasControlCharacters(once.stdout.replaceAll("\n", ""))).toBe(false)
  }, 60_000)
})

describe("chimera dash --targets (over SSH, no control plane)", () => {
  test("reads each target's links: ok, then runtime-drift after a manual test activation", async () => {
    const gen1 = await buildTestSystem(1, { tag: "dash" })
    const gen2 = await buildTestSystem(2, { tag: "dash" })
    await using bed = await createTestbed({ nodes: 2, boot: gen1 })
    const once = async () => {
      const r = await run(
        [
          process.execPath,
          MAIN,
          "dash",
          "--once",
          "--json",
          "--targets",
          bed.nodes.map((n) => n.target).join(","),
          "--identity",
          bed.identityFile,
          "--known-hosts",
          bed.knownHostsFile,
        ],
        { env: { CHIMERA_URL: "", CHIMERA_TOKEN: "", CHIMERA_CONFIG_FILE: "", NO_COLOR: "1" } },
      )
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" })
      return (JSON.parse(r.stdout) as { nodes: { target: string; status: string; current: string }[] }).nodes
    }
    const before = await once()
    expect(before.map((n) => [n.target, n.status, n.current])).toEqual(bed.nodes.map((n) => [n.target, "ok", gen1]))
    // `switch-to-configuration test` by hand: gen2 runs, the profile still says gen1.
    const activated = await bed.nodes[1]?.node.exec([`${gen2}/bin/switch-to-configuration`, "test"])
    expect(activated?.code).toBe(0)
    const after = await once()
    expect(after.map((n) => n.status)).toEqual(["ok", "runtime-drift"])
    expect(after[1]).toMatchObject({ current: gen2, profile: gen1, booted: gen1, drift: ["runtime-drift"] })
  }, 120_000)
})

describe("chimera dash --targets, live", () => {
  test("a target that hangs holds back its own row only; the others stay fresh", async () => {
    const gen1 = await buildTestSystem(1, { tag: "dash" })
    await using bed = await createTestbed({ nodes: 2, boot: gen1 })
    const [one, two] = bed.nodes.map((n) => n.target)
    const ssh = ["--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile]
    await pane.start(["--targets", bed.nodes.map((n) => n.target).join(","), "--interval", "1", ...ssh], {
      env: { CHIMERA_URL: "", CHIMERA_TOKEN: "" },
    })
    const age = (s: string, target = "") =>
      Number(s.match(new RegExp(`^. ${target.replaceAll(".", "\\.")}\\s+\\S+\\s+-\\s+\\S+\\s+(\\d+)s ago`, "m"))?.[1])
    await waitFor("both targets read", pane.screen, (s) => age(s, one) <= 2 && age(s, two) <= 2, 30_000)

    // The second node's sshd sessions stop answering, their connections left open: a hung host.
    const listener = await bed.nodes[1]?.sshd.pid()
    const sessions = (await run(["pgrep", "-P", String(listener)])).stdout.trim().split("\n").filter(Boolean)
    expect(sessions.length).toBeGreaterThan(0)
    for (const pid of sessions) process.kill(Number(pid), "SIGSTOP")
    try {
      const held = await waitFor("the hung target's row to age", pane.screen, (s) => age(s, two) >= 6, 20_000)
      // Before: every row waited for the slowest target, the first one aged with it.
      expect(age(held, one)).toBeLessThanOrEqual(3)
    } finally {
      for (const pid of sessions) process.kill(Number(pid), "SIGCONT")
    }
    await pane.keys("q")
    await pane.expectRestored(0)
  }, 120_000)
})
