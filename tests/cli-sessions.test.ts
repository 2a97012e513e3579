// CLI sessions end to end: a real control plane on loopback, real tmux (each control plane
// has its own private server), real HTTP and Bun's WebSocket client. Covers who may open and use which
// session, commands over the WebSocket and over HTTP with their history and audit entries, cancel and
// interrupt, the `sessions` and `websocket` rate limits, hostile frames, a token printed in pieces, and
// sockets ended by a revocation. A CLI session is a process on the control-plane host, so only admins
// may open one (control/domain/auth/roles.ts).

import { Database } from "bun:sqlite"
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { connect } from "node:net"
import { join } from "node:path"
import fc from "fast-check"
import { ClientMessage } from "../control/api/cli-messages.ts"
import { DEFAULT_LIMITS } from "../control/domain/auth/rate-limiter.ts"
import { setLogLevel, setLogSink } from "../protocol/log.ts"
import { addUser, call, login } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { rateLimitedBody } from "./support/rate-limit.ts"
import { requireTool, run } from "./support/tools.ts"

requireTool("tmux")

interface ServerMessage {
  type: string
  id: string
  correlationId: string | null
  timestamp: string
  data: Record<string, unknown> & { code?: string; content?: string; success?: boolean; status?: string }
}

interface Socket {
  ws: WebSocket
  messages: ServerMessage[]
  send(message: unknown): void
  waitFor(pred: (m: ServerMessage) => boolean, ms?: number): Promise<ServerMessage>
  closed: Promise<{ code: number; reason: string }>
}

const wsUrl = (cp: { url: string }, id: string, query = "") => `${cp.url.replace("http:", "ws:")}/ws/cli/${id}${query}`

/** Opens the session's WebSocket, or rejects when the server refuses the upgrade. */
function openSocket(url: string, token: string | null, protocols?: string[]): Promise<Socket> {
  const ws =
    token === null
      ? new WebSocket(url, protocols)
      : new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, protocols })
  const messages: ServerMessage[] = []
  const waiters = new Set<() => void>()
  let closedWith: (v: { code: number; reason: string }) => void = () => {}
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    closedWith = resolve
  })
  ws.onmessage = (e) => {
    messages.push(JSON.parse(String(e.data)))
    for (const w of waiters) w()
  }
  const socket: Socket = {
    ws,
    messages,
    closed,
    send: (m) => ws.send(typeof m === "string" ? m : JSON.stringify(m)),
    waitFor: (pred, ms = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.find(pred)
          if (!found) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`no matching message in ${ms} ms; got ${JSON.stringify(messages.slice(-5))}`))
        }, ms)
        waiters.add(check)
        check()
      }),
  }
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(socket)
    ws.onerror = () => reject(new Error("the WebSocket upgrade was refused"))
    ws.onclose = (e) => {
      closedWith({ code: e.code, reason: e.reason })
      reject(new Error(`closed before opening: ${e.code}`))
    }
  })
}

/** The status line of a raw upgrade request (what a refused WebSocket client never shows). */
function upgradeStatus(cp: { url: string }, path: string, headers: Record<string, string> = {}): Promise<number> {
  const { hostname, port } = new URL(cp.url)
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname, () => {
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: ${hostname}:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ]
      sock.write(`${lines.join("\r\n")}\r\n\r\n`)
    })
    sock.once("data", (d) => {
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString())?.[1] ?? 0))
      sock.destroy()
    })
    sock.once("error", reject)
  })
}

async function openBash(cp: { url: string }, token: string, body: Record<string, unknown> = {}) {
  const res = await call(cp, token, "POST", "/api/cli/sessions", { cli_tool: "bash", ...body })
  expect(res.status).toBe(201)
  return (await res.json()) as { sessionId: string; status: string; websocketUrl: string; cwd: string }
}

let cp: TestControlPlane
let operator: string
let viewer: string
let otherAdmin: string

beforeAll(async () => {
  cp = await startInProcess()
  await addUser(cp, "olga", "operator")
  await addUser(cp, "vic", "viewer")
  await addUser(cp, "ada", "admin")
  operator = await login(cp, "olga")
  viewer = await login(cp, "vic")
  otherAdmin = await login(cp, "ada")
})

afterAll(async () => {
  await cp.stop()
})

describe("CLI sessions", () => {
  test("what is typed into a session never appears on a command line (ps, /proc/PID/cmdline)", async () => {
    // Every program this process starts while the text is typed, with its whole argv, traced.
    const dir = (await run(["mktemp", "-d"])).stdout.trim()
    const record = join(dir, "execs")
    const tracer = Bun.spawn(
      [requireTool("strace"), "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", record, "-p", String(process.pid)],
      { stdout: "ignore", stderr: "ignore" },
    )
    try {
      await Bun.sleep(500)
      const session = await openBash(cp, cp.adminToken)
      const input = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${session.sessionId}/input`, {
        command: "echo TYPED-SECRET-4242 >/dev/null; echo done",
      })
      expect(await input.json()).toMatchObject({ success: true, output: "done\n" })
      tracer.kill("SIGINT")
      await tracer.exited
      const execs = await Bun.file(record).text()
      expect(execs).toContain('"paste-buffer"')
      expect(execs).not.toContain("TYPED-SECRET-4242")
    } finally {
      tracer.kill()
      await run(["rm", "-rf", dir])
    }
  })

  test("a bash session keeps cwd and variables between WebSocket commands; HTTP /input, history and audit agree", async () => {
    const session = await openBash(cp, cp.adminToken)
    expect(session.sessionId).toMatch(/^chimera-cli-[0-9a-f]{16}$/)
    expect(session.status).toBe("ready")
    expect(session.websocketUrl).toBe(wsUrl(cp, session.sessionId))
    expect((await run(["tmux", "-L", cp.tmuxSocket, "has-session", "-t", `=${session.sessionId}`])).code).toBe(0)

    const s = await openSocket(session.websocketUrl, cp.adminToken)
    await s.waitFor((m) => m.type === "status" && m.data.status === "ready")
    s.send({ type: "command", id: "c1", data: { command: "cd /tmp && export FOO=bar" } })
    const first = await s.waitFor((m) => m.type === "completion" && m.correlationId === "c1")
    expect(first.data).toMatchObject({ success: true, exitCode: 0 })
    s.send({ type: "command", id: "c2", data: { command: "pwd; echo $FOO" } })
    const done = await s.waitFor((m) => m.type === "completion" && m.correlationId === "c2")
    expect(done.data).toMatchObject({ success: true, exitCode: 0 })
    expect(typeof done.data.duration).toBe("number")
    const out = s.messages.filter((m) => m.type === "output" && m.correlationId === "c2")
    expect(out.map((m) => m.data.content).join("")).toBe("/tmp\nbar\n")
    expect(out[0]).toMatchObject({ data: { stream: "stdout", metadata: { format: "text", ansiCodes: false } } })
    expect(out[0]?.id).toMatch(/^out-\d+$/)
    expect(Date.parse(out[0]?.timestamp ?? "")).toBeGreaterThan(0)
    // A failing command is a completion without success, with its exit code.
    s.send({ type: "command", id: "c3", data: { command: "exit 3" } })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "c3")).data).toMatchObject({
      success: false,
      exitCode: 3,
    })

    const input = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${session.sessionId}/input`, {
      command: "echo http-$FOO from $(pwd)",
    })
    expect(input.status).toBe(200)
    expect(await input.json()).toMatchObject({ exitCode: 0, success: true, output: "http-bar from /tmp\n" })
    const failing = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${session.sessionId}/input`, {
      command: "false",
    })
    expect(await failing.json()).toMatchObject({ exitCode: 1, success: false })

    const history = (await (
      await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${session.sessionId}/history`)
    ).json()) as { history: { type: string; content: string }[]; hasMore: boolean }
    expect(history.history.filter((h) => h.type === "command").map((h) => h.content)).toEqual([
      "cd /tmp && export FOO=bar",
      "pwd; echo $FOO",
      "exit 3",
      "echo http-$FOO from $(pwd)",
      "false",
    ])
    expect(
      history.history
        .filter((h) => h.type === "output")
        .map((h) => h.content)
        .join(""),
    ).toContain("/tmp\nbar\n")
    const limited = (await (
      await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${session.sessionId}/history?limit=2`)
    ).json()) as { history: unknown[]; hasMore: boolean }
    expect(limited).toMatchObject({ hasMore: true })
    expect(limited.history).toHaveLength(2)

    const detail = (await (await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${session.sessionId}`)).json()) as {
      processId: number
      statistics: { messagesExchanged: number; bytesTransferred: number }
    }
    expect(detail.processId).toBeGreaterThan(1)
    expect(detail.statistics.messagesExchanged).toBeGreaterThan(4)

    // One audit entry per command: command.run for the WebSocket ones, the request's row for /input.
    const entries = (
      (await (await call(cp, cp.adminToken, "GET", "/api/audit?limit=1000")).json()) as {
        entries: {
          action: string
          command: string | null
          nodeId: string | null
          status: number
          result: string
          detail: unknown
        }[]
      }
    ).entries
    const runs = entries.filter((e) => e.action === "command.run")
    expect(runs.map((e) => [e.command, e.nodeId, e.status])).toEqual(
      expect.arrayContaining([
        ["cd /tmp && export FOO=bar", "control-plane", 200],
        ["pwd; echo $FOO", "control-plane", 200],
        ["exit 3", "control-plane", 200],
      ]),
    )
    expect(runs.filter((e) => e.command === "pwd; echo $FOO")).toHaveLength(1)
    const httpInput = entries.filter((e) => e.command === "echo http-$FOO from $(pwd)")
    expect(httpInput.map((e) => [e.action, e.nodeId])).toEqual([
      ["POST /api/cli/sessions/:sessionId/input", "control-plane"],
    ])
    expect(entries.filter((e) => e.command === "false").map((e) => [e.action, e.status, e.result])).toEqual([
      ["POST /api/cli/sessions/:sessionId/input", 200, "failed"],
    ])

    s.ws.close()
    expect((await call(cp, cp.adminToken, "DELETE", `/api/cli/sessions/${session.sessionId}`)).status).toBe(204)
    expect((await run(["tmux", "-L", cp.tmuxSocket, "has-session", "-t", `=${session.sessionId}`])).code).not.toBe(0)
    expect((await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${session.sessionId}`)).status).toBe(404)
  })

  test("a token a command prints reaches the socket redacted, as it reaches the HTTP answer", async () => {
    const session = await openBash(cp, cp.adminToken)
    const s = await openSocket(session.websocketUrl, cp.adminToken)
    await s.waitFor((m) => m.type === "status" && m.data.status === "ready")
    // The admin token itself, read from the data dir: a real chm_ token.
    s.send({ type: "command", id: "t1", data: { command: `cat ${join(cp.dataDir, "admin.token")}` } })
    await s.waitFor((m) => m.type === "completion" && m.correlationId === "t1")
    const printed = s.messages
      .filter((m) => m.type === "output" && m.correlationId === "t1")
      .map((m) => m.data.content)
      .join("")
    expect(printed).toContain("[redacted]")
    expect(printed).not.toContain(cp.adminToken)
    s.ws.close()
  })

  test("a token the terminal prints in pieces, a poll apart, reaches no socket frame, HTTP answer or history entry", async () => {
    const session = await openBash(cp, cp.adminToken)
    const s = await openSocket(session.websocketUrl, cp.adminToken)
    await s.waitFor((m) => m.type === "status" && m.data.status === "ready")
    // The admin token read from the data dir and printed cut inside its kind, right after it and inside its
    // random part; the pause lets the control plane read each piece alone. The command names no piece.
    const piece = (at: number) => `printf '%s' "\${t:0:${at}}"; sleep 0.3; printf '%s\\n' "\${t:${at}}"`
    const command = `t=$(cat ${join(cp.dataDir, "admin.token")}); ${[6, 10, 30].map(piece).join("; ")}`
    const random = cp.adminToken.slice("chm_admin_".length)
    /** Whether any 8 characters in a row of the token's random part are in `text`. */
    const leaks = (text: string) => [...random.slice(7)].some((_, i) => text.includes(random.slice(i, i + 8)))
    const expected = "chm_[redacted]\n".repeat(3)

    s.send({ type: "command", id: "split", data: { command } })
    await s.waitFor((m) => m.type === "completion" && m.correlationId === "split")
    const frames = s.messages.filter((m) => m.type === "output" && m.correlationId === "split")
    expect(frames.length).toBeGreaterThan(1)
    expect(frames.map((m) => m.data.content).join("")).toBe(expected)

    const input = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${session.sessionId}/input`, { command })
    expect(((await input.json()) as { output: string }).output).toBe(expected)

    const history = (await (
      await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${session.sessionId}/history`)
    ).json()) as { history: { type: string; content: string }[] }
    const output = history.history.filter((h) => h.type === "output").map((h) => h.content)
    expect(output.join("")).toBe(expected.repeat(2))
    expect(output.some(leaks)).toBe(false)
    s.ws.close()
    expect((await call(cp, cp.adminToken, "DELETE", `/api/cli/sessions/${session.sessionId}`)).status).toBe(204)
  })

  test("cancel over the WebSocket and POST /interrupt both stop a running `sleep 30`", async () => {
    const session = await openBash(cp, cp.adminToken)
    const s = await openSocket(wsUrl(cp, session.sessionId), cp.adminToken)
    const started = Date.now()
    s.send({ type: "command", id: "sleep-1", data: { command: "sleep 30" } })
    await s.waitFor((m) => m.type === "status" && m.data.status === "processing")
    s.send({ type: "cancel", id: "cancel-1", data: {} })
    const cancelled = await s.waitFor((m) => m.type === "completion" && m.correlationId === "sleep-1")
    expect(cancelled.data).toMatchObject({ success: false, exitCode: 130 })
    expect(Date.now() - started).toBeLessThan(10_000)
    expect((await s.waitFor((m) => m.correlationId === "cancel-1")).data).toMatchObject({
      details: { interrupted: true },
    })

    s.send({ type: "command", id: "sleep-2", data: { command: "sleep 30" } })
    await s.waitFor(
      (m) => m.type === "output" || (m.type === "status" && m.data.status === "processing" && m.id !== ""),
    )
    await Bun.sleep(300)
    const res = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${session.sessionId}/interrupt`)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ success: true, message: "Interrupt signal sent" })
    const interrupted = await s.waitFor((m) => m.type === "completion" && m.correlationId === "sleep-2")
    expect(interrupted.data).toMatchObject({ success: false, exitCode: 130 })

    // The shell is still there and usable.
    s.send({ type: "command", id: "after", data: { command: "echo still-here" } })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "after")).data.success).toBe(true)
    s.ws.close()
  })

  test("a command option's timeout interrupts the command and says PROCESS_TIMEOUT", async () => {
    const session = await openBash(cp, cp.adminToken)
    const s = await openSocket(wsUrl(cp, session.sessionId), cp.adminToken)
    s.send({ type: "command", id: "slow", data: { command: "sleep 30", options: { timeout: 500 } } })
    const err = await s.waitFor((m) => m.type === "error" && m.correlationId === "slow")
    expect(err.data).toMatchObject({ code: "PROCESS_TIMEOUT", details: { timeout: 500 }, recoverable: true })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "slow")).data.success).toBe(false)
    s.ws.close()
  })

  test("operators and viewers get 403 on every /api/cli route and the WebSocket: a session is admin power", async () => {
    const bash = await call(cp, operator, "POST", "/api/cli/sessions", { cli_tool: "bash" })
    expect(bash.status).toBe(403)
    expect(((await bash.json()) as { error: string }).error).toContain("cli:use")

    const id = (await openBash(cp, cp.adminToken)).sessionId
    const routes: [string, string, unknown?][] = [
      ["POST", "/api/cli/sessions", { cli_tool: "claude" }],
      ["GET", "/api/cli/sessions"],
      ["GET", `/api/cli/sessions/${id}`],
      ["DELETE", `/api/cli/sessions/${id}`],
      ["POST", `/api/cli/sessions/${id}/interrupt`],
      ["POST", `/api/cli/sessions/${id}/input`, { command: "true" }],
      ["GET", `/api/cli/sessions/${id}/history`],
      ["GET", "/api/cli/providers"],
      ["GET", "/api/cli/providers/bash/health"],
      ["GET", "/api/cli/status"],
    ]
    for (const token of [operator, viewer]) {
      for (const [method, path, body] of routes)
        expect(`${method} ${path} ${(await call(cp, token, method, path, body)).status}`).toBe(`${method} ${path} 403`)
      expect(await upgradeStatus(cp, `/ws/cli/${id}`, { authorization: `Bearer ${token}` })).toBe(403)
    }
  })

  test("admins hold cli:full_access and may use each other's sessions; an unknown one is a 404", async () => {
    const mine = (await openBash(cp, otherAdmin)).sessionId
    const info = await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${mine}`)
    expect(info.status).toBe(200)
    const listed = (await (await call(cp, cp.adminToken, "GET", "/api/cli/sessions")).json()) as {
      sessions: { sessionId: string }[]
    }
    expect(listed.sessions.map((s) => s.sessionId)).toContain(mine)
    expect((await call(cp, cp.adminToken, "GET", "/api/cli/sessions/chimera-cli-0000000000000000")).status).toBe(404)
    expect(
      await upgradeStatus(cp, "/ws/cli/chimera-cli-0000000000000000", { authorization: `Bearer ${cp.adminToken}` }),
    ).toBe(404)
  })

  test("providers: bash is available, the AI tools without a binary are not, and opening one is a 503", async () => {
    await using bare = await startInProcess({ providerPath: "/usr/bin:/bin" })
    const providers = (
      (await (await bare.api("/api/cli/providers")).json()) as {
        providers: { name: string; available: boolean; reason?: string }[]
      }
    ).providers
    expect(providers.map((p) => p.name)).toEqual(["bash", "claude", "codex", "gemini", "cursor"])
    expect(providers.find((p) => p.name === "bash")).toMatchObject({ available: true })
    expect(providers.find((p) => p.name === "claude")).toMatchObject({
      available: false,
      reason: "claude is not on the control plane's PATH",
    })
    const health = await (await bare.api("/api/cli/providers/bash/health")).json()
    expect(health).toMatchObject({
      provider: "bash",
      healthy: true,
      checks: { binaryExists: true, testExecution: true },
    })
    const claude = await bare.api("/api/cli/providers/claude/health")
    expect(await claude.json()).toMatchObject({ healthy: false, checks: { binaryExists: false } })
    const res = await bare.api("/api/cli/sessions", { method: "POST", body: JSON.stringify({ cli_tool: "codex" }) })
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ code: "PROVIDER_UNAVAILABLE", error: expect.stringContaining("codex") })
    const status = await (await bare.api("/api/cli/status")).json()
    expect(status).toMatchObject({ status: "healthy", activeSessions: 0 })
  })

  test("cwd must be an existing absolute directory (422 naming the field); a valid one is where the shell starts", async () => {
    for (const cwd of ["relative/dir", "/no/such/dir", "/etc/hostname"]) {
      const res = await call(cp, cp.adminToken, "POST", "/api/cli/sessions", { cli_tool: "bash", cwd })
      expect(res.status).toBe(422)
      expect(await res.json()).toMatchObject({ detail: { issues: [{ path: "cwd" }] } })
    }
    const bad = await call(cp, cp.adminToken, "POST", "/api/cli/sessions", { cli_tool: "bash", shell: "zsh" })
    expect(bad.status).toBe(422)
    const session = await openBash(cp, cp.adminToken, { cwd: "/var" })
    const res = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${session.sessionId}/input`, {
      command: "pwd",
    })
    expect(await res.json()).toMatchObject({ output: "/var\n", exitCode: 0 })
  })

  test("a revoked login cannot keep commanding through a socket it opened", async () => {
    const token = await login(cp, "ada")
    const session = await openBash(cp, token)
    const s = await openSocket(wsUrl(cp, session.sessionId, `?token=${encodeURIComponent(token)}`), null)
    s.send({ type: "command", id: "before", data: { command: "true" } })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "before")).data.success).toBe(true)
    expect((await call(cp, token, "POST", "/api/auth/revoke", {})).status).toBe(200)
    s.send({ type: "command", id: "after", data: { command: "true" } })
    // Refused as the command asks again, or already by the socket's own check: closed either way.
    expect((await s.waitFor((m) => m.type === "error")).data).toMatchObject({ code: "AUTHENTICATION_FAILED" })
    expect((await s.closed).code).toBe(1008)
    expect(s.messages.some((m) => m.type === "completion" && m.correlationId === "after")).toBe(false)
  })

  test("a command whose credential cannot be checked (the store failing) is not run, and the socket stays open", async () => {
    const token = await login(cp, "ada")
    const session = await openBash(cp, token)
    const s = await openSocket(wsUrl(cp, session.sessionId), token)
    const marker = join(cp.dataDir, "run-while-the-store-failed")
    // The sessions table away stands for the database away as the command asks for its credential.
    const db = new Database(join(cp.dataDir, "chimera.db"))
    db.run("ALTER TABLE auth_sessions RENAME TO auth_sessions_moved")
    try {
      s.send({ type: "command", id: "away", data: { command: `touch ${marker}` } })
      const error = await s.waitFor((m) => m.type === "error" && m.correlationId === "away")
      expect(error.data).toMatchObject({ code: "AUDIT_UNAVAILABLE", recoverable: true })
      expect(String((error.data as { message: string }).message)).toContain("the command was not run: try again")
    } finally {
      db.run("ALTER TABLE auth_sessions_moved RENAME TO auth_sessions")
      db.close()
    }
    s.send({ type: "command", id: "back", data: { command: "true" } })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "back")).data.success).toBe(true)
    expect(existsSync(marker)).toBe(false)
    s.ws.close()
  })

  test("revoking the token, login or user behind an open socket closes it within seconds (1008), and nothing made after reaches it", async () => {
    /** The socket's close, or null when it is still open after 3 s. */
    const closedSoon = (s: Socket) => Promise.race([s.closed, Bun.sleep(3000).then(() => null)])
    const opened: string[] = []
    const open = async (token: string) => {
      const { sessionId } = await openBash(cp, token)
      opened.push(sessionId)
      const s = await openSocket(wsUrl(cp, sessionId), token)
      await s.waitFor((m) => m.type === "status" && m.data.status === "ready")
      return s
    }

    // An idle socket of an API token, revoked through the tokens API.
    const made = (await (
      await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "cli-socket", role: "admin" })
    ).json()) as { id: string; token: string }
    const idle = await open(made.token)
    expect((await call(cp, cp.adminToken, "DELETE", `/api/tokens/${made.id}`)).status).toBe(200)
    expect(await closedSoon(idle)).toEqual({ code: 1008, reason: "the API token is unknown or revoked" })
    expect(idle.messages.at(-1)).toMatchObject({ type: "error", data: { code: "AUTHENTICATION_FAILED" } })

    // A login whose command prints the time every 50 ms, revoked by its own holder: no line printed after
    // the revocation is delivered.
    const jwt = await login(cp, "ada")
    const busy = await open(jwt)
    busy.send({ type: "command", id: "ticks", data: { command: "while :; do date +%s%3N; sleep 0.05; done" } })
    // Queued behind the loop, it has not begun when the login ends, and never does.
    const marker = join(cp.dataDir, "queued-after-revocation")
    busy.send({ type: "command", id: "queued", data: { command: `touch ${marker}` } })
    await busy.waitFor((m) => m.type === "output" && m.correlationId === "ticks")
    expect((await call(cp, jwt, "POST", "/api/auth/revoke", {})).status).toBe(200)
    const revokedAt = Date.now()
    expect(await closedSoon(busy)).toEqual({ code: 1008, reason: "the session was revoked; log in again" })
    const ticks = busy.messages
      .filter((m) => m.type === "output")
      .map((m) => m.data.content)
      .join("")
      .split("\n")
      .filter((line) => /^\d{13}$/.test(line))
      .map(Number)
    expect(ticks.length).toBeGreaterThan(0)
    expect(Math.max(...ticks)).toBeLessThanOrEqual(revokedAt)
    expect(busy.messages.at(-1)).toMatchObject({ type: "error", data: { code: "AUTHENTICATION_FAILED" } })
    const interrupt = await call(cp, cp.adminToken, "POST", `/api/cli/sessions/${opened[1]}/interrupt`)
    expect(interrupt.status).toBe(200)
    const notRun = async () => {
      const res = await call(cp, cp.adminToken, "GET", `/api/cli/sessions/${opened[1]}/history`)
      const { history } = (await res.json()) as { history: { type: string; content: string }[] }
      return history.some((h) => h.type === "error" && h.content.startsWith("not run: the session was revoked"))
    }
    for (let i = 0; i < 100 && !(await notRun()); i++) await Bun.sleep(50)
    expect(await notRun()).toBe(true)
    expect(await Bun.file(marker).exists()).toBe(false)
    const audit = (await (await call(cp, cp.adminToken, "GET", "/api/audit?limit=1000")).json()) as {
      entries: { command: string | null; status: number }[]
    }
    expect(audit.entries.filter((e) => e.command === `touch ${marker}`).map((e) => e.status)).toEqual([401])

    // A user removed by an admin: their login's socket closes too.
    await addUser(cp, "rex", "admin")
    const removed = await open(await login(cp, "rex"))
    expect((await call(cp, cp.adminToken, "DELETE", "/api/users/rex")).status).toBe(200)
    expect((await closedSoon(removed))?.code).toBe(1008)

    for (const id of opened)
      expect((await call(cp, cp.adminToken, "DELETE", `/api/cli/sessions/${id}`)).status).toBe(204)
  })
})

describe("CLI session WebSocket", () => {
  test("without a token the upgrade is refused with 401; with ?token= it opens, and no log line holds the token", async () => {
    const logs: string[] = []
    setLogSink((line) => logs.push(line))
    setLogLevel("DEBUG")
    const { sessionId } = await openBash(cp, cp.adminToken)
    expect(await upgradeStatus(cp, `/ws/cli/${sessionId}`)).toBe(401)
    expect(await upgradeStatus(cp, `/ws/cli/${sessionId}?token=chm_api_wrongwrongwrongwrong`)).toBe(401)
    await expect(openSocket(wsUrl(cp, sessionId), null)).rejects.toThrow()
    // The query token is accepted on this route only.
    expect((await fetch(`${cp.url}/api/cli/sessions?token=${cp.adminToken}`)).status).toBe(401)
    const s = await openSocket(wsUrl(cp, sessionId, `?token=${cp.adminToken}`), null, ["cli.v1"])
    expect(s.ws.protocol).toBe("cli.v1")
    s.send({ type: "ping", id: "p1", data: { timestamp: new Date().toISOString() } })
    const pong = await s.waitFor((m) => m.type === "pong")
    expect(pong).toMatchObject({ correlationId: "p1", data: { serverTime: expect.any(String) } })
    s.send({ type: "command", id: "c", data: { command: "echo via-query" } })
    await s.waitFor((m) => m.type === "completion" && m.correlationId === "c")
    s.ws.close()
    setLogSink((line) => process.stderr.write(`${line}\n`))
    setLogLevel("WARNING")
    expect(logs.length).toBeGreaterThan(0)
    expect(logs.filter((l) => l.includes(cp.adminToken))).toEqual([])
    // A plain GET is not a WebSocket.
    expect((await call(cp, cp.adminToken, "GET", `/ws/cli/${sessionId}`)).status).toBe(426)
  })

  test("malformed frames get INVALID_MESSAGE or UNKNOWN_MESSAGE_TYPE and the socket stays usable", async () => {
    const { sessionId } = await openBash(cp, cp.adminToken)
    const s = await openSocket(wsUrl(cp, sessionId), cp.adminToken)
    await s.waitFor((m) => m.type === "status")
    const cases: [string | Uint8Array, string][] = [
      ["{not json", "INVALID_MESSAGE"],
      ["[]", "INVALID_MESSAGE"],
      ['{"id":"x"}', "INVALID_MESSAGE"],
      ['{"type":"launch","id":"u1","data":{}}', "UNKNOWN_MESSAGE_TYPE"],
      ['{"type":"command","id":"m1","data":{}}', "INVALID_MESSAGE"],
      ['{"type":"ping","id":"m2","data":{},"extra":1}', "INVALID_MESSAGE"],
      [JSON.stringify({ type: "command", id: "big", data: { command: "x".repeat(70_000) } }), "INVALID_MESSAGE"],
      [new Uint8Array([1, 2, 3]), "INVALID_MESSAGE"],
    ]
    for (const [frame, code] of cases) {
      const before = s.messages.length
      s.ws.send(frame)
      const reply = await s.waitFor((m) => s.messages.indexOf(m) >= before)
      expect(reply).toMatchObject({ type: "error", data: { code } })
    }
    expect(s.messages.find((m) => m.data.code === "UNKNOWN_MESSAGE_TYPE")?.correlationId).toBe("u1")
    s.send({ type: "status", id: "st", data: {} })
    expect((await s.waitFor((m) => m.correlationId === "st")).data.status).toBe("ready")
    s.ws.close()
  })

  test("the 101st message within a minute gets RATE_LIMIT and is dropped; after the window the socket works again", async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    await using limited = await startInProcess({
      clock,
      trust: { rateLimits: { websocket: DEFAULT_LIMITS.websocket } },
    })
    const { sessionId } = await openBash(limited, limited.adminToken)
    const s = await openSocket(wsUrl(limited, sessionId), limited.adminToken)
    for (let i = 1; i <= 100; i++) s.send({ type: "ping", id: `p${i}`, data: {} })
    await s.waitFor((m) => m.correlationId === "p100")
    s.send({ type: "command", id: "over", data: { command: "touch /tmp/chimera-must-not-exist" } })
    const err = await s.waitFor((m) => m.type === "error" && m.data.code === "RATE_LIMIT")
    expect(err.data).toMatchObject({
      code: "RATE_LIMIT",
      details: { retryAfter: 60, limit: 100, window: "1m", resetAt: "2025-01-15T09:31:00.000Z" },
      recoverable: true,
    })
    await Bun.sleep(300)
    expect(s.messages.some((m) => m.correlationId === "over")).toBe(false)
    expect(s.messages.filter((m) => m.type === "pong")).toHaveLength(100)
    clock.advance(60_000)
    s.send({ type: "command", id: "again", data: { command: "echo back" } })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "again")).data.success).toBe(true)
    s.ws.close()
  })

  test(`the ${DEFAULT_LIMITS.sessions.limit + 1}th session creation within a minute is a 429 saying when to retry, and allowed after the window`, async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    await using limited = await startInProcess({
      clock,
      trust: { rateLimits: { sessions: DEFAULT_LIMITS.sessions } },
    })
    const { limit } = DEFAULT_LIMITS.sessions
    for (let i = 1; i <= limit; i++) {
      const res = await call(limited, limited.adminToken, "POST", "/api/cli/sessions", { cli_tool: "bash" })
      expect(res.status).toBe(201)
      expect(res.headers.get("x-ratelimit-remaining")).toBe(String(limit - i))
    }
    const over = await call(limited, limited.adminToken, "POST", "/api/cli/sessions", { cli_tool: "bash" })
    expect(over.status).toBe(429)
    expect(over.headers.get("x-ratelimit-limit")).toBe(String(limit))
    expect(over.headers.get("x-ratelimit-remaining")).toBe("0")
    expect(over.headers.get("x-ratelimit-reset")).toBe(String(Date.parse("2025-01-15T09:31:00Z") / 1000))
    expect(await over.json()).toEqual(rateLimitedBody(limit, "2025-01-15T09:31:00.000Z"))
    const listed = (await (await call(limited, limited.adminToken, "GET", "/api/cli/sessions")).json()) as {
      total: number
    }
    expect(listed.total).toBe(limit)
    clock.advance(60_000)
    expect((await call(limited, limited.adminToken, "POST", "/api/cli/sessions", { cli_tool: "bash" })).status).toBe(
      201,
    )
  })

  test("1,000 generated hostile frames: each gets an answer, the server stays up, the socket stays usable", async () => {
    const { sessionId } = await openBash(cp, cp.adminToken)
    const s = await openSocket(wsUrl(cp, sessionId), cp.adminToken)
    const anyType = fc.oneof(fc.constantFrom("command", "cancel", "status", "ping", "pong", "output", ""), fc.string())
    const frame = fc
      .oneof(
        fc.string({ maxLength: 300 }),
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc
          .record(
            { type: anyType, id: fc.oneof(fc.string({ maxLength: 200 }), fc.integer()), data: fc.jsonValue() },
            {
              requiredKeys: [],
            },
          )
          .map((v) => JSON.stringify(v)),
        fc.constantFrom('{"__proto__":{"type":"ping"}}', '{"type":"ping","id":"x","data":{"timestamp":"yesterday"}}'),
        fc.constant("x".repeat(66_000)),
      )
      // A frame that is a valid command would run in this admin's shell: the generator keeps to the rest.
      .filter((f) => {
        try {
          return ClientMessage.safeParse(JSON.parse(f)).data?.type !== "command"
        } catch {
          return true
        }
      })
    const frames = fc.sample(frame, { numRuns: 1000, seed: 2002 })
    const before = s.messages.length
    for (const f of frames) s.ws.send(f)
    await s.waitFor(() => s.messages.length - before >= frames.length, 30_000)
    const replies = s.messages.slice(before)
    expect(replies.every((m) => ["error", "pong", "status"].includes(m.type))).toBe(true)
    expect(replies.filter((m) => m.type === "error").every((m) => typeof m.data.code === "string")).toBe(true)
    s.send({ type: "command", id: "alive", data: { command: "echo alive" } })
    expect((await s.waitFor((m) => m.type === "completion" && m.correlationId === "alive")).data.success).toBe(true)
    expect((await fetch(`${cp.url}/api/health`)).status).toBe(200)
    s.ws.close()
  })
})
