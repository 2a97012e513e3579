// What the agents send is strict; what the control plane answers is read leniently, so that a field a
// newer control plane adds does not stop older agents heartbeating during an upgrade.
import { describe, expect, test } from "bun:test"
import { EnrollRequest, HeartbeatResponse, ReportAck, RotatedCredential } from "./agent.ts"

describe("agent protocol", () => {
  test("answers with a field this agent does not know are accepted, the field dropped", () => {
    expect(HeartbeatResponse.parse({ desired: null, drainBy: "2027-01-01" })).toEqual({ desired: null })
    expect(ReportAck.parse({ ackedSeq: 3, compacted: true })).toEqual({ ackedSeq: 3 })
    const rotated = { nodeId: "n1", credential: "x".repeat(32), expiresAt: null }
    expect(RotatedCredential.parse(rotated)).toEqual({ nodeId: "n1", credential: "x".repeat(32) })
  })

  test("requests with a stray field are refused", () => {
    const ok = { nodeId: "n1", hostname: "h", agentVersion: "1" }
    expect(EnrollRequest.safeParse(ok).success).toBe(true)
    expect(EnrollRequest.safeParse({ ...ok, admin: true }).success).toBe(false)
  })
})
