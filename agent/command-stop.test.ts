// A relayed command cut short by the agent's own shutdown: a real agent in a test node runs a long
// command relayed through the real control plane (POST /api/fleet/run), is sent SIGTERM, and the
// operator's answer says the command failed because the agent stopped, instead of waiting out its
// timeout and saying nothing. The shell's process group must be gone too.
import { beforeAll, describe, expect, test } from "bun:test"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "../tests/support/agent-process.ts"
import { startInProcess } from "../tests/support/control-plane.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode } from "../tests/support/test-node.ts"
import { waitFor } from "../tests/support/wait.ts"

let gen1: StorePath

beforeAll(async () => {
  gen1 = await buildTestSystem(1, { tag: "cmdstop" })
})

interface RelayAnswer {
  results: { node: string; status: string; success: boolean; exit_code: number | null; stderr: string }[]
  summary: { ok: number; failed: number; timeout: number; offline: number; cancelled: number }
}

describe("SIGTERM during a relayed command", () => {
  test("the command is acknowledged as failed, agent stopped, before the agent exits", async () => {
    await using cp = await startInProcess()
    await using node = await createTestNode({ name: "cmd-stop", boot: gen1 })
    const tokenRes = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
    const { token } = (await tokenRes.json()) as { token: string }
    const agent = startAgent(node, { nodeId: "cmd-stop", controlUrl: cp.url, joinToken: token })
    try {
      await waitFor(
        "a heartbeat",
        async () => ((await (await cp.api("/api/nodes/cmd-stop")).json()) as { lastHeartbeat?: string }).lastHeartbeat,
        (at) => typeof at === "string",
        30_000,
      )
      const marker = `chimera-stop-${process.pid}-${Date.now()}`
      const relay = cp
        .api("/api/fleet/run", {
          method: "POST",
          body: JSON.stringify({
            command: `echo started; sleep 600; echo ${marker}`,
            nodes: ["cmd-stop"],
            timeout: 300,
          }),
        })
        .then(async (r) => ({ status: r.status, body: (await r.json()) as RelayAnswer }))
      await waitFor(
        "the command running on the node",
        async () => (await Bun.$`pgrep -f ${marker}`.nothrow().quiet()).exitCode,
        (code) => code === 0,
        30_000,
      )
      expect(await agent.stop()).toBe(0)
      const { status, body } = await relay
      expect(status).toBe(200)
      expect(body.summary).toEqual({ ok: 0, failed: 1, timeout: 0, offline: 0, cancelled: 0 })
      const [result] = body.results
      expect(result).toMatchObject({ node: "cmd-stop", status: "failed", success: false, exit_code: null })
      expect(result?.stderr).toContain("agent stopped")
      // The relayed shell went with the agent: nothing of it is left running.
      expect((await Bun.$`pgrep -f ${marker}`.nothrow().quiet()).exitCode).toBe(1)
    } catch (error) {
      await agent.stop()
      throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
    }
  }, 120_000)
})
