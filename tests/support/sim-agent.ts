// An agent's side of the wire without an agent: enrols through the real API and sends heartbeats and
// reports as a node would (protocol/agent.ts), for tests that need fleet events from many nodes
// without a Nix system behind each. Tests of the agent itself use agent-process.ts.
import type { AgentReport } from "../../protocol/agent.ts"
import { heartbeatBody } from "./auth.ts"
import type { TestControlPlane } from "./control-plane.ts"

export const SIM_CLOSURE = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

type ReportBody = Omit<AgentReport, "seq" | "at">

export interface SimAgent {
  id: string
  credential: string
  report(...reports: ReportBody[]): Promise<void>
  heartbeat(): Promise<void>
}

export async function simAgent(cp: Pick<TestControlPlane, "url" | "api">, id: string): Promise<SimAgent> {
  const jt = await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId: id }) })
  if (jt.status !== 201) throw new Error(`join token for ${id}: ${jt.status} ${await jt.text()}`)
  const { token } = (await jt.json()) as { token: string }
  const enrolled = await fetch(`${cp.url}/api/agent/enroll`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ nodeId: id, hostname: id, agentVersion: "sim" }),
  })
  if (enrolled.status !== 201) throw new Error(`enrol ${id}: ${enrolled.status} ${await enrolled.text()}`)
  const { credential } = (await enrolled.json()) as { credential: string }
  let seq = 0
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${cp.url}/api/agent/${id}/${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${credential}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    })
    if (!res.ok) throw new Error(`${id} ${path}: ${res.status} ${await res.text()}`)
  }
  return {
    id,
    credential,
    report: (...reports) =>
      post("reports", { reports: reports.map((r) => ({ ...r, seq: ++seq, at: new Date().toISOString() })) }),
    heartbeat: () => post("heartbeat", { ...heartbeatBody(id), agentVersion: "sim", heartbeatIntervalSeconds: 1 }),
  }
}

export const healFailed = (error = "switch-to-configuration switch exited 1"): ReportBody => ({
  type: "heal.failed",
  data: { desired: SIM_CLOSURE, attempt: 1, durationMs: 10, error, output: "", retryInMs: 1000 },
})

export const healSucceeded = (): ReportBody => ({
  type: "heal.succeeded",
  data: { desired: SIM_CLOSURE, attempt: 2, durationMs: 10 },
})
