// A hostile node and a hostile operator against the admin's terminal, with real parts: a control
// plane, a node speaking the agent API with its own credential, and the real CLI in child processes.
// Whatever they report (an agent version, a disk path, a heal error, a command line) reaches the
// admin's screen escaped (`\x1b`, `\r`, `\u202e`): no escape sequence retitles or clears the terminal
// and no newline forges a line. Fields that should never hold such text refuse it with a 422.
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { streamText } from "./support/stream.ts"
import { firstControl } from "./support/terminal.ts"
import { requireTool, run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
// A Select Graphic Rendition sequence (a colour, bold, dim, reset): what `color` writes.
const SGR = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`, "g")
const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

// Retitle the window, clear the screen, return to the line's start, forge a log line, reverse text.
const ATTACK = "\x1b]0;owned\x07\x1b[2J\x1b[H\r\n2026-12-06T00:00:00Z INFO all nodes healthy\u202e\x9b2J\x7f"

const cli = (cp: TestControlPlane, home: string, ...args: string[]) =>
  run([process.execPath, MAIN, ...args], {
    env: { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, CHIMERA_DATA_DIR: join(home, "data") },
  })

async function hostileFleet(cp: TestControlPlane): Promise<void> {
  const credential = await enrollNode(cp, "evil-1")
  const beat = (body: object) => call(cp, credential, "POST", "/api/agent/evil-1/heartbeat", body)
  // Fields that are never free text refuse control characters outright.
  const version = await beat({ ...heartbeatBody("evil-1"), agentVersion: "1.0\x1b]0;owned\x07\x1b[2J" })
  expect(version.status).toBe(422)
  expect(await version.text()).toContain("expected a version of 1-64 letters")
  const host = await beat({ ...heartbeatBody("evil-1"), hostname: "evil\x1b[2J" })
  expect(host.status).toBe(422)
  expect(await host.text()).toContain("expected a host name without control or format characters")
  const joinToken = (await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", {})).json()) as {
    token: string
  }
  const enrol = await call(cp, joinToken.token, "POST", "/api/agent/enroll", {
    nodeId: "evil-2",
    agentVersion: "\x1b[2J",
  })
  expect(enrol.status).toBe(422)
  // A disk path and a heal error are free text: they are stored as sent and escaped when shown.
  const ok = await beat({ ...heartbeatBody("evil-1"), disk: { path: `/mnt/${ATTACK}`, totalBytes: 1, freeBytes: 1 } })
  expect(ok.status).toBe(200)
  const report = await call(cp, credential, "POST", "/api/agent/evil-1/reports", {
    reports: [
      {
        seq: 1,
        at: new Date().toISOString(),
        type: "heal.failed",
        data: { desired: GEN, attempt: 1, durationMs: 1, error: ATTACK, output: ATTACK, retryInMs: null },
      },
    ],
  })
  expect(report.status).toBe(200)
  // An agent version stored before versions were checked, as an older control plane kept it.
  const db = new Database(join(cp.dataDir, "chimera.db"))
  db.run("UPDATE nodes SET agent_version = ? WHERE id = 'evil-1'", [`9.9${ATTACK}`])
  db.close()
  // An operator's command line lands in the audit log as typed.
  const relayed = await call(cp, cp.adminToken, "POST", "/api/fleet/run", {
    command: `echo ${ATTACK}`,
    nodes: ["evil-1"],
    timeout: 1,
  })
  expect(relayed.status).toBe(200)
}

describe("text from nodes and users on the admin's terminal", () => {
  test("every command shows it escaped, and --json keeps it exactly, as JSON", async () => {
    await using cp = await startInProcess()
    const home = await mkdtemp(join(tmpdir(), "chimera-terminal-"))
    try {
      await hostileFleet(cp)
      const outputs: Record<string, string> = {}
      for (const args of [
        ["nodes", "show", "evil-1"],
        ["nodes", "list"],
        ["events"],
        ["audit"],
        ["users", "list"],
        ["tokens", "list"],
      ]) {
        const r = await cli(cp, home, ...args)
        expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" })
        expect({ args, control: firstControl(r.stdout) }).toEqual({ args, control: null })
        outputs[args.join(" ")] = r.stdout
      }
      const shown =
        "\\x1b]0;owned\\x07\\x1b[2J\\x1b[H\\r\\n2026-12-06T00:00:00Z INFO all nodes healthy\\u202e\\u009b2J\\x7f"
      expect(outputs["nodes show evil-1"]).toContain(`agent      9.9${shown}`)
      expect(outputs["nodes show evil-1"]).toContain(`/mnt/${shown}`)
      expect(outputs.events).toContain("attempt 1: \\x1b]0;owned\\x07\\x1b[2J")
      expect(outputs.audit).toContain("echo \\x1b]0;owned\\x07")
      // No forged line: every line of `nodes show` is one of its fields.
      for (const line of (outputs["nodes show evil-1"] ?? "").trimEnd().split("\n"))
        expect(line).toMatch(/^(node|status|desired|profile|current|booted|heartbeat|agent|load|memory|disk) /)

      const json = await cli(cp, home, "nodes", "show", "evil-1", "--json")
      expect(json.code).toBe(0)
      expect(firstControl(json.stdout)).toBeNull()
      const node = JSON.parse(json.stdout) as { agentVersion: string; health: { disk: { path: string } } }
      expect(node.agentVersion).toBe(`9.9${ATTACK}`)
      expect(node.health.disk.path).toBe(`/mnt/${ATTACK}`)
      const events = await cli(cp, home, "events", "--json")
      expect(firstControl(events.stdout)).toBeNull()
      expect(JSON.stringify(JSON.parse(events.stdout))).toContain("INFO all nodes healthy")
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)

  test("events --follow shows a heal error escaped as it arrives", async () => {
    await using cp = await startInProcess()
    const home = await mkdtemp(join(tmpdir(), "chimera-terminal-"))
    try {
      await hostileFleet(cp)
      const proc = Bun.spawn([process.execPath, MAIN, "events", "--follow"], {
        env: { ...process.env, HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      })
      const out = streamText(proc.stdout as ReadableStream<Uint8Array>)
      await out.until((text) => text.includes("heal.failed") && text.endsWith("\n"))
      proc.kill()
      await proc.exited
      expect(out.text).toContain("attempt 1: \\x1b]0;owned")
      expect(firstControl(out.text)).toBeNull()
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)

  test("on a real terminal our colours are the only escape sequences written", async () => {
    const script = requireTool("script")
    await using cp = await startInProcess()
    const home = await mkdtemp(join(tmpdir(), "chimera-terminal-"))
    try {
      await hostileFleet(cp)
      const r = await run([script, "-qec", `${process.execPath} ${MAIN} nodes show evil-1`, "/dev/null"], {
        env: { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: undefined, TERM: "xterm" },
      })
      expect(r.code).toBe(0)
      // A terminal's own line endings are \r\n; every ESC starts one of our SGR colours.
      const text = r.stdout.replace(/\r\n/g, "\n")
      expect(text).toContain("\x1b[2magent")
      expect(firstControl(text.replaceAll(SGR, ""))).toBeNull()
      expect(text).toContain("\\x1b]0;owned")
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)

  test("stderr sent to a file gets no colour codes while stdout is a terminal", async () => {
    const script = requireTool("script")
    await using cp = await startInProcess()
    const home = await mkdtemp(join(tmpdir(), "chimera-terminal-"))
    try {
      const chimera = `${process.execPath} ${MAIN}`
      const errors = join(home, "errors.log")
      // An error (`warn`) and a usage error (citty's usage, then the error) written to a log, as in
      // `chimera deploy … 2>>deploy.log` typed at a terminal; then a table, still coloured on the terminal.
      const r = await run(
        [
          script,
          "-qec",
          `${chimera} nodes show nobody 2>${errors}; ${chimera} nodes show 2>>${errors}; ${chimera} tokens list`,
          "/dev/null",
        ],
        { env: { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: undefined, TERM: "xterm" } },
      )
      expect(r.code).toBe(0)
      expect(r.stdout).toContain("\x1b[1mID")
      const logged = await Bun.file(errors).text()
      expect(logged).toContain('error no node "nobody"')
      expect(logged).toContain("USAGE chimera nodes show")
      expect(logged).not.toContain("\x1b")
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)
})
