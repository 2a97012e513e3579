// Principals for tests: users of each role logged in through the real API, API tokens, and enrolled
// nodes with their credentials; and `call`, a fetch with a bearer token and a JSON body.

import type { Role } from "../../control/domain/auth/roles.ts"
import type { NodeHealth } from "../../protocol/agent.ts"
import type { TestControlPlane } from "./control-plane.ts"

export const PASSWORD = "correct horse battery staple"

export function call(cp: { url: string }, token: string | null, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { "content-type": "application/json" }
  if (token !== null) headers.authorization = `Bearer ${token}`
  return fetch(`${cp.url}${path}`, {
    method,
    headers,
    body: body === undefined ? (method === "GET" ? undefined : "{}") : JSON.stringify(body),
  })
}

export async function addUser(cp: TestControlPlane, username: string, role: Role, password = PASSWORD) {
  const res = await call(cp, cp.adminToken, "POST", "/api/users", { username, password, role })
  if (res.status !== 201) throw new Error(`adding ${username}: ${res.status} ${await res.text()}`)
  return (await res.json()) as { id: string; username: string; role: Role }
}

export async function login(cp: { url: string }, username: string, password = PASSWORD): Promise<string> {
  const res = await call(cp, null, "POST", "/api/auth/login", { username, password })
  if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { token: string }).token
}

export async function enrollNode(cp: TestControlPlane, nodeId: string): Promise<string> {
  // Bound to the node, so enrolling an id again (a fresh credential) is the legitimate re-enrolment.
  const jt = (await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId })).json()) as {
    token: string
  }
  const res = await call(cp, jt.token, "POST", "/api/agent/enroll", { nodeId, hostname: nodeId, agentVersion: "t" })
  if (res.status !== 201) throw new Error(`enrolling ${nodeId}: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { credential: string }).credential
}

/** A valid heartbeat (NodeHealth) of a congruent test node, its store paths typed as strings. */
export function heartbeatBody(nodeId: string) {
  const gen = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
  return {
    nodeId,
    agentVersion: "t",
    hostname: nodeId,
    at: new Date().toISOString(),
    uptimeSeconds: 1,
    load: [0, 0, 0],
    memory: { totalBytes: 1, availableBytes: 1 },
    disk: { path: "/", totalBytes: 1, freeBytes: 1 },
    system: { profile: gen, current: gen, booted: gen },
    desired: gen,
    phase: "congruent",
    heartbeatIntervalSeconds: 5,
  } satisfies NodeHealth
}

/** A heal.failed report (the agent's seq `seq`) whose output is `outputBytes` long, for report routes. */
export function healFailedReport(seq: number, outputBytes = 100) {
  return {
    seq,
    at: new Date().toISOString(),
    type: "heal.failed" as const,
    data: {
      desired: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1",
      attempt: 1,
      durationMs: 5,
      error: "switch-to-configuration failed",
      output: "x".repeat(outputBytes),
      retryInMs: 1000,
    },
  }
}
