// Cancelling a command relayed through the agents (POST /api/fleet/run/:runId/cancel, a caller that
// goes away, `chimera nodes run`'s Ctrl-C), with real parts: a control plane over HTTP, a test node
// running the real agent, and real shells on it. A long command cancelled stops on the node (its
// marker file never appears, its process is gone) and answers `cancelled` with what it wrote so far.
// A hand-driven "agent" shows the wire's edges: a command cancelled before its agent fetched it is
// never delivered, and an agent that ignores the cancel (one that predates it) answers as before.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { CommandResults } from "../control/domain/command-results.ts"
import { serveMcpHttp } from "../control/mcp/http.ts"
import { agentTestbed } from "./support/agent-testbed.ts"
import { addUser, call, enrollNode, heartbeatBody, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import type { Testbed, TestbedNode } from "./support/testbed.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

/** POST /api/fleet/run's answer, or its refusal. */
type RelayAnswer = CommandResults & { error?: string; code?: string }
interface CancelAnswer {
  run_id: string
  stopping: string[]
  not_started: string[]
  ended: string[]
  error?: string
  code?: string
}

let cp: TestControlPlane
let bed: Testbed
let node: TestbedNode

beforeAll(async () => {
  cp = await startInProcess()
  bed = await agentTestbed(cp, { nodes: 1, prefix: "cancel" })
  node = bed.nodes[0] as TestbedNode
  await addUser(cp, "op", "operator")
  await addUser(cp, "viewer", "viewer")
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await cp?.stop()
})

const relay = (body: Record<string, unknown>, token = cp.adminToken, signal?: AbortSignal) =>
  fetch(`${cp.url}/api/fleet/run`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  })
const cancel = async (runId: string, token = cp.adminToken) => {
  const res = await call(cp, token, "POST", `/api/fleet/run/${runId}/cancel`)
  return { status: res.status, body: (await res.json()) as CancelAnswer }
}
const agentLog = () => node.agent?.log().slice(-3000) ?? ""
/** Whether a process whose command line matches `pattern` runs on the node. */
const running = async (pattern: string) => (await node.node.exec(["pgrep", "-f", pattern]))?.code === 0
/** A marker path on the node, and a command that writes a line, sleeps `seconds` and then makes it. */
const slowTouch = (seconds: string) => {
  // A plain name in /tmp (shared with the node): a low-risk write, which an operator may run and cancel.
  const marker = `/tmp/chimera-cancel-marker-${randomUUID()}`
  return { marker, command: `echo started; echo warming >&2; sleep ${seconds}; touch ${marker}` }
}

describe("cancelling a relayed command", () => {
  test("cancelled through the API, it stops on the node and answers `cancelled` with its output so far", async () => {
    const runId = randomUUID()
    const { marker, command } = slowTouch("4.3141")
    const t0 = performance.now()
    const answer = relay({ command, nodes: [node.name], timeout: 30, run_id: runId })
    await waitFor("the command running on the node", () => running("sleep 4[.]3141"), Boolean, 10_000)

    const cancelled = await cancel(runId, await login(cp, "op"))
    expect(cancelled).toEqual({
      status: 202,
      body: { run_id: runId, stopping: [node.name], not_started: [], ended: [] },
    })
    const res = await answer
    const body = (await res.json()) as RelayAnswer
    expect(res.status).toBe(200)
    expect(performance.now() - t0).toBeLessThan(4000)
    expect(body.results[0]).toMatchObject({
      node: node.name,
      status: "cancelled",
      success: false,
      exit_code: null,
      stdout: "started\n",
    })
    expect(body.results[0]?.stderr).toBe("warming\n[chimera: cancelled; process group sent SIGTERM]")
    expect(body.summary).toEqual({ ok: 0, failed: 0, timeout: 0, offline: 0, cancelled: 1 })
    expect(await running("sleep 4[.]3141")).toBe(false)
    // Past the sleep's end: the marker never came.
    await Bun.sleep(Math.max(0, 5000 - (performance.now() - t0)))
    expect(existsSync(marker)).toBe(false)

    // The node's record of it says so, with the partial output.
    const listed = (await (await cp.api(`/api/nodes/${node.name}/commands`)).json()) as {
      commands: { summary: string; cancelled: boolean; output: string; stderr: string; exitCode: number | null }[]
    }
    expect(listed.commands.find((c) => c.summary === command)).toMatchObject({
      cancelled: true,
      output: "started\n",
      exitCode: null,
    })
    // Once it has ended, a cancel is a 409 that says so.
    const again = await cancel(runId)
    expect(again.status).toBe(409)
    expect(again.body).toMatchObject({ code: "CONFLICT" })
    expect(again.body.error).toContain(`run ${runId} has ended`)
  }, 30_000)

  test("a caller that goes away cancels its run: the command stops on the node", async () => {
    const { marker, command } = slowTouch("3.2718")
    const leaving = new AbortController()
    const answer = relay({ command, nodes: [node.name], timeout: 30 }, cp.adminToken, leaving.signal).catch(
      (error: unknown) => error,
    )
    await waitFor("the command running on the node", () => running("sleep 3[.]2718"), Boolean, 10_000)
    leaving.abort()
    expect(await answer).toBeInstanceOf(Error)
    await waitFor(
      "the command stopped on the node",
      () => running("sleep 3[.]2718"),
      (r) => !r,
      3000,
    ).catch((error) => {
      throw new Error(`${(error as Error).message}\n${agentLog()}`)
    })
    await Bun.sleep(3500)
    expect(existsSync(marker)).toBe(false)
  }, 30_000)

  test("chimera nodes run: Ctrl-C cancels the run, says what it cancelled and exits 130", async () => {
    const { marker, command } = slowTouch("3.1415")
    const cli = Bun.spawn(
      [
        process.execPath,
        join(import.meta.dir, "../control/main.ts"),
        "nodes",
        "run",
        "--nodes",
        node.name,
        "--",
        command,
      ],
      {
        env: { ...process.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" },
        stdout: "pipe",
        stderr: "pipe",
      },
    )
    await waitFor("the command running on the node", () => running("^sleep 3[.]1415"), Boolean, 10_000)
    cli.kill("SIGINT")
    const code = await cli.exited
    const stderr = await new Response(cli.stderr).text()
    expect({ code, stderr }).toMatchObject({
      code: 130,
      stderr: expect.stringMatching(
        new RegExp(
          `interrupted: cancelling run [0-9a-f-]{36} on the nodes[^\n]*\ncancelled run [0-9a-f-]{36}: stopping on ${node.name}\n`,
        ),
      ),
    })
    await waitFor(
      "the command stopped on the node",
      () => running("^sleep 3[.]1415"),
      (r) => !r,
      5000,
    )
    await Bun.sleep(3500)
    expect(existsSync(marker)).toBe(false)
  }, 30_000)

  test("an MCP client that cancels its run_command call (notifications/cancelled) stops the command on the node", async () => {
    const mcp = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
    const client = new Client({ name: "cancel", version: "1" })
    try {
      await client.connect(
        new StreamableHTTPClientTransport(new URL(mcp.url), {
          requestInit: { headers: { authorization: `Bearer ${cp.adminToken}` } },
        }),
      )
      const { marker, command } = slowTouch("3.5772")
      const leaving = new AbortController()
      const call_ = client
        .callTool({ name: "run_command", arguments: { command, nodes: [node.name], timeout: 30 } }, undefined, {
          signal: leaving.signal,
        })
        .catch((error: unknown) => error)
      await waitFor("the command running on the node", () => running("^sleep 3[.]5772"), Boolean, 10_000)
      const t0 = performance.now()
      leaving.abort("the user pressed stop")
      expect(await call_).toBeInstanceOf(Error)
      await waitFor(
        "the command stopped on the node",
        () => running("^sleep 3[.]5772"),
        (r) => !r,
        3000,
      ).catch((error) => {
        throw new Error(`${(error as Error).message}\n${agentLog()}`)
      })
      await Bun.sleep(Math.max(0, 4000 - (performance.now() - t0)))
      expect(existsSync(marker)).toBe(false)
    } finally {
      await client.close()
      await mcp.stop()
    }
  }, 30_000)

  test("a command still waiting in the agent's queue (4 already run) is never started once cancelled", async () => {
    const busy = Array.from({ length: 4 }, () => randomUUID())
    const sleepers = busy.map((runId) =>
      relay({ command: "sleep 20.6180", nodes: [node.name], timeout: 30, run_id: runId }),
    )
    await waitFor(
      "four commands running on the node",
      async () => (await node.node.exec(["pgrep", "-c", "-f", "^sleep 20[.]6180"]))?.stdout.trim(),
      (n) => n === "4",
      10_000,
    )
    const { marker } = slowTouch("0")
    const runId = randomUUID()
    const waiting = relay({ command: `touch ${marker}`, nodes: [node.name], timeout: 30, run_id: runId })
    await waitFor(
      "the fifth command fetched by the agent",
      async () =>
        (
          (await (await cp.api(`/api/nodes/${node.name}/commands`)).json()) as {
            commands: { summary: string; deliveredAt: string | null }[]
          }
        ).commands.find((c) => c.summary === `touch ${marker}`)?.deliveredAt,
      (at) => typeof at === "string",
      5000,
    )
    expect((await cancel(runId)).body).toMatchObject({ stopping: [node.name] })
    const body = (await (await waiting).json()) as RelayAnswer
    expect(body.results[0]).toMatchObject({ status: "cancelled", exit_code: null, stdout: "" })
    expect(body.results[0]?.stderr).toBe("[chimera: cancelled while it waited in the agent's queue; not started]")
    for (const id of busy) expect((await cancel(id)).status).toBe(202)
    for (const s of await Promise.all(sleepers))
      expect(((await s.json()) as RelayAnswer).results[0]?.status).toBe("cancelled")
    expect(existsSync(marker)).toBe(false)
  }, 30_000)

  test("a viewer may not cancel (403), nor an operator a high-risk run; a finished run is 409, an unknown one 404", async () => {
    const credential = await enrollNode(cp, "hand")
    await call(cp, credential, "POST", "/api/agent/hand/heartbeat", heartbeatBody("hand"))
    const runId = randomUUID()
    // High risk: only an admin may run it, and so only an admin may stop it. The hand-driven agent
    // runs nothing.
    const answer = relay({ command: "systemctl stop nginx", nodes: ["hand"], timeout: 20, run_id: runId })
    await waitFor(
      "the run queued",
      async () => (await cancel(runId, await login(cp, "viewer"))).status,
      (s) => s !== 404,
      5000,
    )
    const viewer = await cancel(runId, await login(cp, "viewer"))
    expect(viewer.status).toBe(403)
    const op = await cancel(runId, await login(cp, "op"))
    expect(op.status).toBe(403)
    expect(op.body.error).toContain("commands:run-high")
    // Neither stopped it: the command is still there for its agent.
    const polled = (await (await call(cp, credential, "GET", "/api/agent/hand/commands?wait=0")).json()) as {
      commands: { id: string }[]
    }
    expect(polled.commands).toHaveLength(1)
    const id = polled.commands[0]?.id as string
    await call(cp, credential, "POST", `/api/agent/hand/commands/${id}/ack`, {
      success: true,
      output: "",
      exitCode: 0,
      stderr: "",
      timedOut: false,
    })
    expect((await (await answer).json()) as RelayAnswer).toMatchObject({ results: [{ status: "ok" }] })
    const ended = await cancel(runId)
    expect(ended.status).toBe(409)
    expect(ended.body.error).toBe(
      `run ${runId} has ended: every node answered or timed out (1 node); nothing was cancelled`,
    )
    const unknown = await cancel(randomUUID())
    expect(unknown.status).toBe(404)
    expect((await cancel("not-a-uuid")).status).toBe(422)
    // A run id is one run's: a second run under it is refused, and nothing of it is queued.
    const twice = await relay({ command: "true", nodes: ["hand"], timeout: 5, run_id: runId })
    expect(twice.status).toBe(409)
    expect(((await twice.json()) as RelayAnswer).error).toContain("already exists")
  }, 30_000)

  test("a command cancelled before its agent fetched it is never delivered, and answers at once", async () => {
    const credential = await enrollNode(cp, "late")
    await call(cp, credential, "POST", "/api/agent/late/heartbeat", heartbeatBody("late"))
    const runId = randomUUID()
    const t0 = performance.now()
    const answer = relay({ command: "touch /tmp/never", nodes: ["late"], timeout: 20, run_id: runId })
    await waitFor(
      "the run queued",
      async () => (await cancel(runId)).status,
      (s) => s !== 404,
      5000,
    ).then((s) => expect(s).toBe(202))
    const body = (await (await answer).json()) as RelayAnswer
    expect(performance.now() - t0).toBeLessThan(5000)
    expect(body.results[0]).toMatchObject({ node: "late", status: "cancelled", exit_code: null, stdout: "" })
    expect(body.results[0]?.stderr).toContain("cancelled before the agent fetched it")
    const polled = (await (await call(cp, credential, "GET", "/api/agent/late/commands?wait=0")).json()) as {
      commands: unknown[]
      cancel?: unknown
    }
    expect(polled).toEqual({ commands: [] })
  })

  test("an agent that ignores the cancel (one that predates it) answers as its command ended", async () => {
    const credential = await enrollNode(cp, "old")
    await call(cp, credential, "POST", "/api/agent/old/heartbeat", heartbeatBody("old"))
    const runId = randomUUID()
    const answer = relay({ command: "uptime", nodes: ["old"], timeout: 20, run_id: runId })
    const first = (await (await call(cp, credential, "GET", "/api/agent/old/commands?wait=5")).json()) as {
      commands: { id: string }[]
    }
    const id = first.commands[0]?.id as string
    expect((await cancel(runId)).body).toMatchObject({ stopping: ["old"] })
    // The long poll says it once (again after a minute unacknowledged), beside the commands an older
    // agent reads alone.
    const told = await (await call(cp, credential, "GET", "/api/agent/old/commands?wait=0")).json()
    expect(told).toEqual({ commands: [], cancel: [id] })
    expect(await (await call(cp, credential, "GET", "/api/agent/old/commands?wait=0")).json()).toEqual({
      commands: [],
    })
    await call(cp, credential, "POST", `/api/agent/old/commands/${id}/ack`, {
      success: true,
      output: "up\n",
      exitCode: 0,
      stderr: "",
      timedOut: false,
    })
    expect((await (await answer).json()) as RelayAnswer).toMatchObject({
      results: [{ node: "old", status: "ok", exit_code: 0, stdout: "up\n" }],
    })
  })
})
