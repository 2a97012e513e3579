// The command API on real nodes: a control plane whose [fleet.nodes] are two testbed
// nodes (real sshd on loopback, each in its own mount namespace), one of which has a non-root login
// with a real sudo password. One-off commands, failures, timeouts, persistent sessions (cwd and
// exported variables survive), history, sudo with and without the right password, the registry's
// risk levels against roles, the `commands` and `sessions` rate limits, and clear 4xx answers.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { join } from "node:path"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import type { CommandResult } from "../control/domain/command-service.ts"
import { addUser, call, login } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { addSudoUser } from "./support/sudo-user.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { run as runTool } from "./support/tools.ts"

setDefaultTimeout(60_000)

const SUDO_PASSWORD = "sudo-Pa55-for-deploy"

let tb: Testbed
let cp: TestControlPlane
let ops: string
let viewer: string

const targetsOf = (testbed: Testbed) =>
  commandTargets(
    { nodes: testbed.nodes.map((n) => ({ name: n.name, address: n.target, tags: [] })), targets: [] },
    { identity: testbed.identityFile, knownHosts: testbed.knownHostsFile },
  )

beforeAll(async () => {
  tb = await createTestbed({ nodes: 2, prefix: "cmd" })
  await addSudoUser(tb.nodes[0]!.node, join(tb.dir, "sudo"), {
    name: "deploy",
    uid: 1500,
    password: SUDO_PASSWORD,
    authorizedKeys: await Bun.file(tb.authorizedKeysFile).text(),
  })
  cp = await startInProcess({ commandTargets: targetsOf(tb) })
  await addUser(cp, "ops", "operator")
  await addUser(cp, "ops2", "operator")
  await addUser(cp, "watcher", "viewer")
  ops = await login(cp, "ops")
  viewer = await login(cp, "watcher")
})
afterAll(async () => {
  await cp?.stop()
  await tb?.stop()
})

async function run(token: string, body: Record<string, unknown>): Promise<{ status: number; r: CommandResult }> {
  const res = await call(cp, token, "POST", "/api/run-command", body)
  return { status: res.status, r: (await res.json()) as CommandResult }
}

describe("POST /api/run-command", () => {
  test("runs a command on the named node and answers success, exit code, output and timing", async () => {
    const { status, r } = await run(ops, {
      command: "id -u; cat /proc/self/cgroup >/dev/null; hostname",
      node: "cmd-1",
    })
    expect(status).toBe(200)
    expect(r).toMatchObject({ success: true, exit_code: 0, stderr: "", command: expect.stringContaining("id -u") })
    expect(r.stdout.split("\n")[0]).toBe("0")
    expect(r.execution_time).toBeGreaterThan(0)
    expect(r.metadata).toMatchObject({ node: "cmd-1", session_id: null, risk_level: "low", current_directory: "/root" })
  })

  test("a failing command is a 200 with its exit code and stderr; stdin is closed", async () => {
    const { status, r } = await run(ops, { command: "cat; ls /no/such/dir", node: "cmd-2" })
    expect(status).toBe(200)
    expect(r.success).toBe(false)
    expect(r.exit_code).toBe(2)
    expect(r.stderr).toContain("/no/such/dir")
  })

  test("a command past its timeout is killed on the node and says so", async () => {
    // The login is root, for whom OpenSSH refuses SSH's "signal" request: the node's `timeout` stops it.
    const tag = String(Math.floor(Math.random() * 1e9)).padStart(9, "0")
    const alive = async () => (await runTool(["pgrep", "-f", `sleep 2000\\.${tag}`])).stdout.trim()
    const { r } = await run(ops, { command: `sleep 2000.${tag}`, node: "cmd-1", timeout: 1 })
    expect(r.success).toBe(false)
    expect(r.exit_code).toBeNull()
    expect(r.metadata.failure?.kind).toBe("timeout")
    expect(r.execution_time).toBeLessThan(10)
    let left = await alive()
    for (let i = 0; i < 50 && left !== ""; i++) {
      await Bun.sleep(100)
      left = await alive()
    }
    expect(left).toBe("")
  })

  test("sudo with the right password runs as root; the password is never echoed", async () => {
    const { r } = await run(cp.adminToken, {
      command: "id -u; sudo id -u; sudo cat; echo leaked:$__chimera_pw; env | grep -c CHIMERA_PW",
      node: "cmd-1",
      username: "deploy",
      sudo_password: SUDO_PASSWORD,
    })
    expect(r.stderr).toBe("")
    // `sudo cat` gets an empty stdin: the password went to sudo's askpass, not to the command.
    expect(r.stdout).toBe("1500\n0\nleaked:[REDACTED]\n0\n")
    expect(JSON.stringify(r)).not.toContain(SUDO_PASSWORD)
  })

  test("sudo with a wrong password or none fails like sudo does", async () => {
    const wrong = await run(cp.adminToken, {
      command: "sudo -k id -u",
      node: "cmd-1",
      username: "deploy",
      sudo_password: "not-the-password",
    })
    expect(wrong.r.success).toBe(false)
    expect(wrong.r.stderr).toContain("incorrect password")
    expect(wrong.r.execution_time).toBeLessThan(5)
    const none = await run(cp.adminToken, { command: "sudo -n id -u", node: "cmd-1", username: "deploy" })
    expect(none.r.success).toBe(false)
    expect(none.r.stderr).toContain("password is required")
  })

  test("a session keeps no trace of a sudo password, even one the command tried to export", async () => {
    const created = await call(cp, cp.adminToken, "POST", "/api/create-session", { node: "cmd-1" })
    const id = ((await created.json()) as { session_id: string }).session_id
    const first = await run(cp.adminToken, {
      command: "export __chimera_pw __CHIMERA_PW=x; sudo true",
      session_id: id,
      username: "deploy",
      sudo_password: SUDO_PASSWORD,
    })
    expect(first.r.success).toBe(true)
    const second = await run(cp.adminToken, {
      command: "env; cat ~/.cache/chimera/api-sessions/*/env",
      session_id: id,
      username: "deploy",
    })
    expect(second.r.success).toBe(true)
    expect(second.r.stdout).toContain("HOME=/home/deploy")
    expect(second.r.stdout).not.toContain(SUDO_PASSWORD)
    expect(second.r.stdout.toLowerCase()).not.toContain("__chimera_pw")
  })

  test("only an admin may log in as another user than the node's configured one", async () => {
    const res = await call(cp, ops, "POST", "/api/run-command", { command: "id -u", node: "cmd-1", username: "deploy" })
    expect(res.status).toBe(403)
    expect(((await res.json()) as { error: string }).error).toContain("configured user root")
  })

  test("high-risk commands need commands:run-high: an operator is refused, an admin is not", async () => {
    const refused = await call(cp, ops, "POST", "/api/run-command", { command: "rm -rf /tmp/chimera-x", node: "cmd-1" })
    expect(refused.status).toBe(403)
    const body = (await refused.json()) as { error: string }
    expect(body.error).toContain("high risk")
    expect(body.error).toContain("commands:run-high")
    const { r } = await run(cp.adminToken, { command: "rm -rf /tmp/chimera-x", node: "cmd-1" })
    expect(r).toMatchObject({ success: true, metadata: { risk_level: "high" } })
    expect((await call(cp, viewer, "POST", "/api/run-command", { command: "ls", node: "cmd-1" })).status).toBe(403)
  })

  test("bad requests get a 4xx that says what to do", async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [
        { command: "ls", node: "elsewhere" },
        404,
        `node \\"elsewhere\\" not found: the command API reaches the nodes in [fleet.nodes]`,
      ],
      [{ command: "ls" }, 422, "name the node"],
      [{ command: "ls", node: "cmd-1", host: "10.0.0.1" }, 422, "does not connect to free addresses"],
      [{ command: "ls", node: "cmd-1", password: "x" }, 422, "SSH password logins are not supported"],
      [{ command: "ls", node: "cmd-1", remote: false }, 422, "CLI session"],
      [{ command: "ls", node: "cmd-1", timeout: 0 }, 422, "timeout"],
      [{ command: "", node: "cmd-1" }, 422, "expected a command"],
      [{ command: "ls", node: "cmd-1", session_id: "../etc" }, 422, "session_id"],
      [{ command: "ls", node: "cmd-1", session_id: "nope" }, 404, "session"],
    ]
    for (const [body, status, text] of cases) {
      const res = await call(cp, ops, "POST", "/api/run-command", body)
      const answer = await res.text()
      expect(`${JSON.stringify(body)} -> ${res.status} ${answer.includes(text)}`).toBe(
        `${JSON.stringify(body)} -> ${status} true`,
      )
    }
  })
})

describe("command sessions", () => {
  test("cwd and exported variables survive between commands; history and info follow", async () => {
    const created = await call(cp, ops, "POST", "/api/create-session", {
      node: "cmd-2",
      client_info: { tool: "test", version: "1.0" },
    })
    expect(created.status).toBe(201)
    const { session_id: id, timeout } = (await created.json()) as { session_id: string; timeout: number }
    expect(timeout).toBe(3600)

    // `export` and `$…` are high risk (the registry reads no expansion), so the admin, who may use any
    // session, sets and reads the variable in the operator's session.
    const admin = cp.adminToken
    const first = await run(admin, {
      command: "mkdir -p /tmp/chimera-s && cd /tmp/chimera-s && export GREETING='hi there'",
      session_id: id,
    })
    expect(first.r).toMatchObject({ success: true, metadata: { node: "cmd-2", current_directory: "/tmp/chimera-s" } })
    const second = await run(admin, { command: 'pwd; echo "$GREETING"; exit 3', session_id: id })
    expect(second.r).toMatchObject({ exit_code: 3, stdout: "/tmp/chimera-s\nhi there\n" })
    // `exit` ended that shell, but the state it had was saved on the way out.
    const third = await run(admin, { command: 'echo "$GREETING from $PWD"', session_id: id })
    expect(third.r.stdout).toBe("hi there from /tmp/chimera-s\n")
    // A session is bound to its node.
    expect(
      (await call(cp, ops, "POST", "/api/run-command", { command: "ls", node: "cmd-1", session_id: id })).status,
    ).toBe(422)

    const info = (await (await call(cp, ops, "GET", `/api/session/${id}`)).json()) as Record<string, unknown>
    expect(info).toMatchObject({ session_id: id, node: "cmd-2", command_count: 3, current_directory: "/tmp/chimera-s" })
    const history = (await (await call(cp, ops, "GET", `/api/session/${id}/history?limit=2`)).json()) as {
      command: string
      exit_code: number
      success: boolean
    }[]
    expect(history.map((h) => [h.command, h.exit_code, h.success])).toEqual([
      ['pwd; echo "$GREETING"; exit 3', 3, false],
      ['echo "$GREETING from $PWD"', 0, true],
    ])

    // Another operator may not use or read it; an admin may.
    const ops2 = await login(cp, "ops2")
    expect((await call(cp, ops2, "GET", `/api/session/${id}`)).status).toBe(403)
    expect((await call(cp, ops2, "POST", "/api/run-command", { command: "ls", session_id: id })).status).toBe(403)
    expect((await call(cp, cp.adminToken, "GET", `/api/session/${id}/history`)).status).toBe(200)

    // Closing it removes its state from the node; a closed session takes no more commands.
    const state = `/run/chimera/api-sessions/${id}`
    expect((await tb.nodes[1]!.node.exec(["test", "-d", state])).code).toBe(0)
    expect((await call(cp, ops, "DELETE", `/api/session/${id}`)).status).toBe(200)
    expect((await tb.nodes[1]!.node.exec(["test", "-e", state])).code).toBe(1)
    expect((await call(cp, ops, "POST", "/api/run-command", { command: "ls", session_id: id })).status).toBe(409)
  })

  test("a session created without a node is bound by its first command; ids are unique", async () => {
    const created = await call(cp, ops, "POST", "/api/create-session", { session_id: "mine-1" })
    expect(created.status).toBe(201)
    expect((await call(cp, ops, "POST", "/api/create-session", { session_id: "mine-1" })).status).toBe(409)
    expect((await run(ops, { command: "cd /", session_id: "mine-1", node: "cmd-1" })).r.success).toBe(true)
    const info = (await (await call(cp, ops, "GET", "/api/session/mine-1")).json()) as { node: string }
    expect(info.node).toBe("cmd-1")
    expect((await run(ops, { command: "pwd", session_id: "mine-1" })).r.stdout).toBe("/\n")
  })

  test("a password typed into a command is kept out of the answer, the history and the audit log", async () => {
    const created = await call(cp, ops, "POST", "/api/create-session", { node: "cmd-1" })
    const id = ((await created.json()) as { session_id: string }).session_id
    // Setting a variable other than the locale's is high risk: the admin types it into the operator's session.
    const res = await call(cp, cp.adminToken, "POST", "/api/run-command", {
      command: "PGPASSWORD=hunter2-typed true",
      session_id: id,
    })
    const answer = await res.text()
    expect(res.status).toBe(200)
    const history = await (await call(cp, ops, "GET", `/api/session/${id}/history`)).text()
    const audit = await (await call(cp, cp.adminToken, "GET", "/api/audit?action=POST%20/api/run-command")).text()
    for (const [where, text] of Object.entries({ answer, history, audit }))
      expect(`${where}: ${text.includes("hunter2-typed")}`).toBe(`${where}: false`)
    expect(history).toContain("PGPASSWORD=[redacted] true")
  })

  test("the registry lists commands with risk levels", async () => {
    const res = await call(cp, viewer, "GET", "/api/registry")
    expect(res.status).toBe(200)
    const registry = (await res.json()) as { total_commands: number; commands: Record<string, { risk_level: string }> }
    expect(registry.total_commands).toBeGreaterThan(50)
    expect(registry.commands.rm?.risk_level).toBe("high")
  })
})

describe("rate limits on commands and sessions", () => {
  test("60/min per session and 10/min per user, scaled down: 429 with headers and body, then reset", async () => {
    // Time moves only by hand, so the window cannot run out while SSH commands are slow on a busy machine.
    const windowMs = 1500
    const clock = manualClock()
    await using limited = await startInProcess({
      clock,
      commandTargets: targetsOf(tb),
      trust: {
        rateLimits: { commands: { limit: 3, windowMs }, sessions: { limit: 2, windowMs } },
      },
    })
    await addUser(limited, "ops", "operator")
    const token = await login(limited, "ops")
    const session = async () => call(limited, token, "POST", "/api/create-session", { node: "cmd-1" })
    const s1 = await session()
    const s2 = await session()
    expect([s1.status, s2.status]).toEqual([201, 201])
    const over = await session()
    expect(over.status).toBe(429)
    expect(over.headers.get("x-ratelimit-limit")).toBe("2")
    expect(over.headers.get("x-ratelimit-remaining")).toBe("0")
    expect(Number(over.headers.get("x-ratelimit-reset"))).toBeGreaterThan(clock.now().getTime() / 1000)
    expect(await over.json()).toMatchObject({
      error: "RATE_LIMIT_EXCEEDED",
      limit: 2,
      window: "1500ms",
      retryAfter: expect.any(Number),
      resetAt: expect.any(String),
    })

    const id = ((await s1.json()) as { session_id: string }).session_id
    const other = ((await s2.json()) as { session_id: string }).session_id
    const command = (sessionId: string) =>
      call(limited, token, "POST", "/api/run-command", { command: "true", session_id: sessionId })
    for (let i = 0; i < 3; i++) expect((await command(id)).status).toBe(200)
    const limitedRun = await command(id)
    expect(limitedRun.status).toBe(429)
    expect(limitedRun.headers.get("x-ratelimit-limit")).toBe("3")
    expect(await limitedRun.json()).toMatchObject({ error: "RATE_LIMIT_EXCEEDED", limit: 3 })
    // Per session: the other one still has its budget.
    expect((await command(other)).status).toBe(200)

    clock.advance(windowMs + 100)
    expect((await command(id)).status).toBe(200)
    expect((await session()).status).toBe(201)
  })
})
