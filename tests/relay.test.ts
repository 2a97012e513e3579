// Commands relayed through the node agents (POST /api/fleet/run), with real parts: a control plane
// over HTTP, three test nodes each running the real agent (enrolled with a join token), and real
// shells on the nodes. Also the wire's edges with a hand-driven "agent": an agent that predates `run`,
// and a command nobody answered, which must never be delivered afterwards.
import { Database } from "bun:sqlite"
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { rm } from "node:fs/promises"
import { join } from "node:path"
import type { CommandResults } from "../control/domain/command-results.ts"
import { agentTestbed } from "./support/agent-testbed.ts"
import { addUser, call, enrollNode, heartbeatBody, login } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import type { Testbed, TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

/** POST /api/fleet/run's answer: the results' shape every door shares. */
type RelayAnswer = CommandResults

let cp: TestControlPlane
let bed: Testbed
let names: string[]

beforeAll(async () => {
  cp = await startInProcess()
  bed = await agentTestbed(cp, { nodes: 3, prefix: "relay" })
  names = bed.nodes.map((n) => n.name)
  await addUser(cp, "op", "operator")
  await addUser(cp, "viewer", "viewer")
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await cp?.stop()
})

const relay = async (body: unknown, token = cp.adminToken) => {
  const res = await call(cp, token, "POST", "/api/fleet/run", body)
  return { status: res.status, body: (await res.json()) as RelayAnswer & { error?: string; code?: string } }
}

const agentLogs = () => bed.nodes.map((n) => `--- ${n.name}\n${n.agent?.log().slice(-3000)}`).join("\n")

describe("commands relayed through the agents", () => {
  test("runs on every node through its agent and answers each node's exit code and stdout", async () => {
    const { status, body } = await relay({ command: "hostname; id -u", nodes: names, timeout: 10 })
    expect({ status, error: body.error }).toEqual({ status: 200, error: undefined })
    expect(body.summary).toEqual({ ok: 3, failed: 0, timeout: 0, offline: 0, cancelled: 0 })
    expect(body.results.map((r) => r.node)).toEqual(names)
    for (const r of body.results) {
      expect(r).toMatchObject({ status: "ok", success: true, exit_code: 0, stderr: "" })
      expect(r.stdout.trim().split("\n").at(-1)).toBe("0")
      expect(r.duration).toBeLessThan(5)
    }
    const all = await relay({ command: "true", all: true, timeout: 10 })
    expect(all.body.summary.ok).toBe(3)
  })

  test("a failing command answers its exit code and stderr, as failed", async () => {
    const { status, body } = await relay({ command: "ls /nonexistent-relay-dir", nodes: [names[0]], timeout: 10 })
    expect(status).toBe(200)
    expect(body.results[0]).toMatchObject({ node: names[0], status: "failed", success: false, exit_code: 2 })
    expect(body.results[0]?.stderr).toContain("nonexistent-relay-dir")
    expect(body.summary).toEqual({ ok: 0, failed: 1, timeout: 0, offline: 0, cancelled: 0 })
  })

  test("a command past its timeout is a timeout, and the agent kills it with its process group", async () => {
    const node = bed.nodes[1] as TestbedNode
    const t0 = performance.now()
    // The shell runs `sleep` as a child (two commands): the kill must reach the whole group.
    const { status, body } = await relay({ command: "sleep 30.4711; echo never", nodes: [node.name], timeout: 1 })
    expect(status).toBe(200)
    expect(performance.now() - t0).toBeLessThan(5000)
    expect(body.results[0]).toMatchObject({ status: "timeout", success: false, exit_code: null })
    await waitFor(
      "no `sleep 30.4711` left on the node",
      async () => (await node.node.exec(["pgrep", "-f", "sleep 30[.]4711"]))?.code,
      (code) => code === 1,
      5000,
    ).catch((error) => {
      throw new Error(`${(error as Error).message}\n${agentLogs()}`)
    })
  })

  test("a command runs in a fresh directory, removed afterwards; children left holding its output are killed", async () => {
    const node = bed.nodes[1] as TestbedNode
    const { body } = await relay({
      command: "pwd; echo kept > relative.txt; ls; sleep 31.4242 & echo started",
      nodes: [node.name],
      timeout: 10,
    })
    const [cwd, listed, started] = (body.results[0]?.stdout ?? "").trim().split("\n")
    expect({ listed, started, status: body.results[0]?.status }).toEqual({
      listed: "relative.txt",
      started: "started",
      status: "ok",
    })
    expect(cwd).toMatch(/\/chimera-run-[^/]+$/)
    expect((await node.node.exec(["test", "-e", cwd as string]))?.code).toBe(1)
    expect((await node.node.exec(["pgrep", "-f", "sleep 31[.]4242"]))?.code).toBe(1)
  })

  test("relayed commands run concurrently on one agent, and output is capped with a note", async () => {
    // The first waits for a file only the second makes: run one after the other, the first would time out.
    const gate = `/tmp/chimera-relay-gate-${process.pid}-${Date.now()}`
    const slow = relay({
      command: `while [ ! -e ${gate} ]; do sleep 0.05; done; echo a`,
      nodes: [names[0]],
      timeout: 20,
    })
    await Bun.sleep(300)
    const b = await relay({
      command: `touch ${gate}; head -c 200000 /dev/zero | tr '\\0' x`,
      nodes: [names[0]],
      timeout: 20,
    })
    const a = await slow
    expect(a.body.results[0]?.stdout).toBe("a\n")
    expect(b.body.results[0]?.status).toBe("ok")
    expect(b.body.results[0]?.stdout.length).toBeLessThanOrEqual(65_536)
    expect(b.body.results[0]?.stdout).toContain("output truncated")
    await rm(gate, { force: true })
  })

  test("only commands:run may relay, and high-risk commands need commands:run-high (admin)", async () => {
    const op = await login(cp, "op")
    const low = await relay({ command: "uptime", nodes: [names[0]], timeout: 10 }, op)
    expect(low.status).toBe(200)
    const high = await relay({ command: "rm -rf /tmp/relay-x", nodes: [names[0]], timeout: 10 }, op)
    expect(high.status).toBe(403)
    expect(high.body.error).toContain("commands:run-high")
    const viewer = await relay({ command: "uptime", nodes: [names[0]] }, await login(cp, "viewer"))
    expect(viewer.status).toBe(403)
    const audit = (await (await cp.api("/api/audit?action=POST%20/api/fleet/run")).json()) as {
      entries: { result: string; status: number; detail: { outcome?: Record<string, unknown> } | null }[]
    }
    expect(audit.entries.some((e) => e.status === 403)).toBe(true)
    expect(audit.entries.find((e) => e.detail?.outcome?.nodes === 3)?.detail?.outcome).toMatchObject({ ok: 3 })
  })

  test("unknown nodes are a 404 naming them, and nothing runs; a bad body is a 422", async () => {
    const { status, body } = await relay({ command: "true", nodes: [names[0], "ghost-1", "ghost-2"] })
    expect(status).toBe(404)
    expect(body.error).toContain("ghost-1, ghost-2")
    expect((await relay({ command: "true", nodes: [names[0]], all: true })).status).toBe(422)
    expect((await relay({ command: "true" })).status).toBe(422)
    expect((await relay({ command: "true", nodes: [names[0]], timeout: 0 })).status).toBe(422)
  })

  test("an agent that predates `run` acks it as unsupported: failed, with its reason", async () => {
    const credential = await enrollNode(cp, "legacy")
    await call(cp, credential, "POST", "/api/agent/legacy/heartbeat", heartbeatBody("legacy"))
    const pending = relay({ command: "true", nodes: ["legacy"], timeout: 10 })
    const list = (await (await call(cp, credential, "GET", "/api/agent/legacy/commands?wait=5")).json()) as {
      commands: { id: string; kind: string }[]
    }
    expect(list.commands.map((c) => c.kind)).toEqual(["run"])
    const ack = await call(cp, credential, "POST", `/api/agent/legacy/commands/${list.commands[0]?.id}/ack`, {
      success: false,
      output: "this agent does not support command kind run",
    })
    expect(ack.status).toBe(200)
    const { body } = await pending
    expect(body.results[0]).toMatchObject({ status: "failed", exit_code: null, stdout: "" })
    expect(body.results[0]?.stderr).toContain("does not support command kind run")
  })

  test("a secret assigned on the command line reaches the node as typed, and is not kept in the database", async () => {
    const { body } = await relay({
      command: "PGPASSWORD=relay-s3cret-77 printenv PGPASSWORD",
      nodes: names,
      timeout: 10,
    })
    expect(body.summary.ok).toBe(3)
    // The answers agents fetch are not put through the API's redaction: `PGPASSWORD=[redacted]` would run.
    for (const r of body.results) expect(r.stdout).toBe("relay-s3cret-77\n")
    const db = new Database(join(cp.dataDir, "chimera.db"), { readonly: true })
    try {
      const rows = db.query("SELECT payload FROM commands WHERE kind = 'run'").all() as { payload: string }[]
      expect(rows.length).toBeGreaterThan(3)
      expect(rows.filter((r) => r.payload.includes("relay-s3cret-77"))).toEqual([])
    } finally {
      db.close()
    }
  })

  test("a command nobody answered in time is never delivered afterwards", async () => {
    const credential = await enrollNode(cp, "silent")
    await call(cp, credential, "POST", "/api/agent/silent/heartbeat", heartbeatBody("silent"))
    const { body } = await relay({ command: "true", nodes: ["silent"], timeout: 1 })
    expect(body.results[0]?.status).toBe("timeout")
    const list = (await (await call(cp, credential, "GET", "/api/agent/silent/commands?wait=0")).json()) as {
      commands: unknown[]
    }
    expect(list.commands).toEqual([])
  })

  test("chimera nodes run: each node's lines under its name, a summary, exit 1 when one fails; --json", async () => {
    const chimera = (args: string[]) =>
      run([process.execPath, join(import.meta.dir, "../control/main.ts"), "nodes", "run", ...args], {
        env: { CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" },
      })
    const [a, b] = names as [string, string]
    const ok = await chimera(["--nodes", `${a},${b}`, "--", "echo", "hi"])
    expect({ code: ok.code, stderr: ok.stderr }).toMatchObject({ code: 0 })
    expect(ok.stdout.split("\n").filter(Boolean).sort()).toEqual([`${a} | hi`, `${b} | hi`])
    expect(ok.stderr).toContain("2 nodes: 2 ok")
    const failing = await chimera(["--nodes", a, "--timeout", "10", "--", "echo oops >&2; exit 3"])
    expect(failing.code).toBe(1)
    expect(failing.stderr).toContain(`${a} ! oops`)
    expect(failing.stderr).toContain(`${a} ✗ exited 3`)
    expect(failing.stderr).toContain("1 node: 0 ok, 1 failed")
    const json = await chimera(["--nodes", a, "--json", "--", "id", "-u"])
    expect(JSON.parse(json.stdout)).toMatchObject({
      results: [{ node: a, status: "ok", exit_code: 0, stdout: "0\n" }],
      summary: { ok: 1 },
    })
    for (const [args, message] of [
      [["--", "true"], "--nodes web-1,web-2) or pass --all"],
      [["--all", "--timeout", "0", "--", "true"], "--timeout: expected at least 1 second"],
      [["--nodes", "bad id!", "--", "true"], "--nodes:"],
      [["--all"], "no command given"],
    ] as const) {
      const r = await chimera([...args])
      expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 64, stderr: expect.stringContaining(message) })
    }
  })

  test("a node whose agent stopped answers timeout, then offline at once when heartbeats say it is gone", async () => {
    const node = bed.nodes[2] as TestbedNode
    await node.agent?.stop()
    const first = await relay({ command: "true", nodes: [node.name], timeout: 1 })
    expect(["timeout", "offline"]).toContain(first.body.results[0]?.status ?? "none")
    await waitFor(
      `${node.name} unreachable`,
      async () => ((await (await cp.api(`/api/nodes/${node.name}`)).json()) as { status: string }).status,
      (s) => s === "unreachable",
      10_000,
    )
    const t0 = performance.now()
    const { body } = await relay({ command: "true", nodes: names, timeout: 10 })
    expect(performance.now() - t0).toBeLessThan(5000)
    expect(body.results.find((r) => r.node === node.name)).toMatchObject({ status: "offline", exit_code: null })
    expect(body.summary.ok).toBe(2)
  })
})

describe("delivery of relayed commands (a hand-driven agent, a clock moved by hand)", () => {
  test("a command is delivered at most once, with what is left of its timeout", async () => {
    const clock = manualClock()
    await using cp2 = await startInProcess({ clock })
    const credential = await enrollNode(cp2, "once")
    await call(cp2, credential, "POST", "/api/agent/once/heartbeat", heartbeatBody("once"))
    const pending = call(cp2, cp2.adminToken, "POST", "/api/fleet/run", {
      command: "true",
      nodes: ["once"],
      timeout: 120,
    })
    const fetch = async (wait: number) =>
      (
        (await (await call(cp2, credential, "GET", `/api/agent/once/commands?wait=${wait}`)).json()) as {
          commands: { id: string; kind: string; timeoutSeconds: number }[]
        }
      ).commands
    // Queued, then the agent is slow to ask for it: it gets the 90 s that are left, not 120.
    const db = new Database(join(cp2.dataDir, "chimera.db"), { readonly: true })
    await waitFor(
      "the command queued",
      async () => db.query("SELECT count(*) AS n FROM commands WHERE node_id = 'once'").get() as { n: number },
      (r) => r.n === 1,
    ).finally(() => db.close())
    clock.advance(30_000)
    const first = await fetch(5)
    expect(first.map((c) => [c.kind, c.timeoutSeconds])).toEqual([["run", 90]])
    // Unacknowledged a minute later (the agent restarted, its ack was lost): not handed out again.
    clock.advance(61_000)
    expect(await fetch(0)).toEqual([])
    const ack = await call(cp2, credential, "POST", `/api/agent/once/commands/${first[0]?.id}/ack`, {
      success: true,
      output: "",
      exitCode: 0,
      stderr: "",
      timedOut: false,
    })
    expect(ack.status).toBe(200)
    const answer = (await (await pending).json()) as RelayAnswer
    expect(answer.summary.ok).toBe(1)
  })

  test("answered commands are pruned after [retention] command_days; unanswered ones stay", async () => {
    const clock = manualClock()
    await using cp2 = await startInProcess({ clock, retention: { commandDays: 1, intervalMs: 50 } })
    const credential = await enrollNode(cp2, "kept")
    await call(cp2, credential, "POST", "/api/agent/kept/heartbeat", heartbeatBody("kept"))
    const fetchOne = async () =>
      (
        await waitFor(
          "a command for the agent",
          async () =>
            (
              (await (await call(cp2, credential, "GET", "/api/agent/kept/commands?wait=0")).json()) as {
                commands: { id: string }[]
              }
            ).commands,
          (cs) => cs.length === 1,
        )
      )[0] as { id: string }
    const answered = call(cp2, cp2.adminToken, "POST", "/api/fleet/run", {
      command: "true",
      nodes: ["kept"],
      timeout: 60,
    })
    const first = await fetchOne()
    await call(cp2, credential, "POST", `/api/agent/kept/commands/${first.id}/ack`, {
      success: true,
      output: "old output\n",
      exitCode: 0,
      stderr: "",
      timedOut: false,
    })
    expect((await answered).status).toBe(200)
    clock.advance(2 * 86_400_000)
    // A new one, still unanswered: pruning must leave it alone.
    void call(cp2, cp2.adminToken, "POST", "/api/fleet/run", { command: "true", nodes: ["kept"], timeout: 600 }).catch(
      () => {},
    )
    const second = await fetchOne()
    const db = new Database(join(cp2.dataDir, "chimera.db"), { readonly: true })
    try {
      const ids = await waitFor(
        "the answered command pruned",
        async () =>
          (db.query("SELECT id FROM commands WHERE node_id = 'kept'").all() as { id: string }[]).map((r) => r.id),
        (rows) => !rows.includes(first.id),
      )
      expect(ids).toEqual([second.id])
    } finally {
      db.close()
    }
  })
})
