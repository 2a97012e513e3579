// The command risk model at the doors, with real parts: a control plane, one testbed node reached
// over real SSH (POST /api/run-command, the root login's bash) and through its real agent (POST
// /api/fleet/run). The outside attack deleted canary files as an operator with lines the old reader
// rated low (`${x@P}`, `$[x]`, `/tmp/../`); each is now high, so the operator gets 403 at both doors
// and the canary survives, while an admin running the same line shows the line really is destructive.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { randomBytes } from "node:crypto"
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import { type AgentProcess, startAgent } from "./support/agent-process.ts"
import { addUser, call, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

let tb: Testbed
let cp: TestControlPlane
let ops: string
let agent: AgentProcess | undefined
const run = Math.random().toString(36).slice(2, 8)
const canaries: string[] = []

/** A file on the node (the testbed shares the host's /tmp) that an attack line tries to destroy. */
function canary(): string {
  const path = `/tmp/chimera-canary-${run}-${randomBytes(4).toString("hex")}`
  writeFileSync(path, "alive\n")
  canaries.push(path)
  return path
}
const intact = (path: string) => existsSync(path) && readFileSync(path, "utf8") === "alive\n"

// biome-ignore-start lint/suspicious/noTemplateCurlyInString: shell lines, not templates
const ATTACKS: ((canary: string) => string)[] = [
  (c) => `x='$(rm -f ${c})'; echo \${x@P}`,
  (c) => `x='a[$(rm -f ${c})]'; echo $[x]`,
  (c) => `x='a[$(rm -f ${c})]'; y[x]=1`,
  (c) => `test -v 'a[$(rm -f ${c})]'`,
  (c) => `echo x > /tmp/../${c.slice(1)}`,
  (c) => `printf -v 'a[$(rm -f ${c})]' %s x`,
]
// biome-ignore-end lint/suspicious/noTemplateCurlyInString: shell lines, not templates

beforeAll(async () => {
  tb = await createTestbed({ nodes: 1, prefix: "risk" })
  cp = await startInProcess({
    commandTargets: commandTargets(
      { nodes: tb.nodes.map((n) => ({ name: n.name, address: n.target, tags: [] })), targets: [] },
      { identity: tb.identityFile, knownHosts: tb.knownHostsFile },
    ),
  })
  const issued = await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId: "risk-1" }) })
  const { token } = (await issued.json()) as {
    token: string
  }
  agent = startAgent((tb.nodes[0] as TestbedNode).node, { nodeId: "risk-1", controlUrl: cp.url, joinToken: token })
  await addUser(cp, "attacker", "operator")
  ops = await login(cp, "attacker")
}, 120_000)

afterAll(async () => {
  await agent?.stop()
  await tb?.stop()
  await cp?.stop()
  for (const c of canaries) rmSync(c, { force: true })
})

describe("the attack's lines are refused to an operator at every door", () => {
  test("POST /api/run-command (bash over SSH): 403 and the canary survives; an admin's run destroys it", async () => {
    for (const attack of ATTACKS) {
      const c = canary()
      const res = await call(cp, ops, "POST", "/api/run-command", { command: attack(c), node: "risk-1" })
      const body = (await res.json()) as { code?: string; error?: string }
      expect({ line: attack(c), status: res.status, code: body.code }).toEqual({
        line: attack(c),
        status: 403,
        code: "PERMISSION_DENIED",
      })
      expect(body.error).toContain("high risk")
      expect(intact(c)).toBe(true)
    }
    // The same lines are real attacks on this node: run by an admin (commands:run-high), they destroy.
    for (const attack of ATTACKS) {
      const c = canary()
      const res = await call(cp, cp.adminToken, "POST", "/api/run-command", { command: attack(c), node: "risk-1" })
      expect(res.status).toBe(200)
      expect({ line: attack(c), intact: intact(c) }).toEqual({ line: attack(c), intact: false })
    }
  })

  test("POST /api/fleet/run (through the agent): 403 and the canary survives", async () => {
    await waitFor(
      `risk-1 enrolled and heard from (agent log: ${agent?.log().slice(-500)})`,
      async () => (await (await cp.api("/api/nodes/risk-1")).json()) as { lastHeartbeat?: string | null },
      (n) => typeof n.lastHeartbeat === "string",
    )
    for (const attack of ATTACKS) {
      const c = canary()
      const res = await call(cp, ops, "POST", "/api/fleet/run", { command: attack(c), nodes: ["risk-1"], timeout: 10 })
      expect({ line: attack(c), status: res.status }).toEqual({ line: attack(c), status: 403 })
      expect(intact(c)).toBe(true)
    }
    // The door is open to the operator for what is understood: the canary is read back through the agent.
    const c = canary()
    const res = await call(cp, ops, "POST", "/api/fleet/run", { command: `cat ${c}`, nodes: ["risk-1"], timeout: 10 })
    const body = (await res.json()) as { results: { stdout: string; status: string }[] }
    expect(res.status).toBe(200)
    expect(body.results[0]).toMatchObject({ status: "ok", stdout: "alive\n" })
  })

  test("the everyday commands run for an operator over SSH", async () => {
    for (const command of ["uptime", "df -h", "cat /etc/os-release", "ls -la /var/log", "readlink -f /proc/self/exe"]) {
      const res = await call(cp, ops, "POST", "/api/run-command", { command, node: "risk-1" })
      const body = (await res.json()) as { success?: boolean; metadata?: { risk_level: string } }
      expect({ command, status: res.status, risk: body.metadata?.risk_level }).toEqual({
        command,
        status: 200,
        risk: "low",
      })
    }
  })
})
