// Enrolment against a real control plane when the answer is lost: the control plane took the join
// token, the agent never heard. The agent made its credential and stored it before asking, so its
// retry is recognised as the same enrolment, and the node gets in with a single-use token.
import { describe, expect, test } from "bun:test"
import { statSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { NodeHealth } from "../protocol/agent.ts"
import { setLogSink } from "../protocol/log.ts"
import { heartbeatBody } from "../tests/support/auth.ts"
import { startInProcess } from "../tests/support/control-plane.ts"
import { ControlError, createControlClient, type OrchestratorPort } from "./control-client.ts"
import { enroll, enrollAgain } from "./enrollment.ts"
import { openStateDir } from "./state-dir.ts"

describe("enrolment (agent side)", () => {
  test("an answer lost after the control plane took the join token is repeated, not a lock-out", async () => {
    await using cp = await startInProcess()
    const dir = await mkdtemp(join(tmpdir(), "chimera-enrol-"))
    try {
      const stateDir = openStateDir(join(dir, "state"))
      let bearer: string | null = null
      const real = createControlClient({ baseUrl: cp.url, nodeId: "lossy-1", credential: () => bearer })
      let attempts = 0
      // The first enrolment reaches the control plane, which commits it; its answer never arrives.
      const lossy: OrchestratorPort = {
        ...real,
        async enroll(token, request) {
          attempts++
          const answer = await real.enroll(token, request)
          if (attempts === 1) {
            // Stored before the first attempt, and only then: a crash here keeps it for the next start.
            expect(stateDir.readPendingEnrolment()?.nodeId).toBe("lossy-1")
            expect(statSync(join(dir, "state", "enrolling.json")).mode & 0o777).toBe(0o600)
            throw new ControlError("POST api/agent/enroll: the operation timed out", null)
          }
          return answer
        },
      }
      const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
        token: string
      }
      bearer = await enroll({
        client: lossy,
        stateDir,
        nodeId: "lossy-1",
        joinToken: token,
        controlUrl: cp.url,
        hostname: "lossy-1",
        signal: AbortSignal.timeout(20_000),
      })
      expect(attempts).toBe(2)
      expect(bearer).toStartWith("chm_node_")
      expect(stateDir.readCredential()?.credential).toBe(bearer as string)
      expect(stateDir.readPendingEnrolment()).toBeNull()
      expect((await real.heartbeat(heartbeatBody("lossy-1") as NodeHealth)).desired).toBeNull()

      // One enrolment in the event log, and the token stays spent for anyone else.
      const events = (await (await cp.api("/api/events?node=lossy-1&type=node.enrolled")).json()) as {
        events: unknown[]
      }
      expect(events.events).toHaveLength(1)
      const other = createControlClient({ baseUrl: cp.url, nodeId: "lossy-1", credential: () => null })
      const stolen = await other
        .enroll(token, { nodeId: "lossy-1", hostname: "x", agentVersion: "t", credentialHash: "0".repeat(64) })
        .catch((e: ControlError) => e)
      expect(stolen).toBeInstanceOf(ControlError)
      expect((stolen as ControlError).status).toBe(401)

      // An agent given the spent token says how to get in: a new one for its node.
      const lines: string[] = []
      setLogSink((line) => lines.push(line))
      try {
        const refused = await enroll({
          client: other,
          stateDir: openStateDir(join(dir, "other-state")),
          nodeId: "lossy-2",
          joinToken: token,
          controlUrl: cp.url,
          hostname: "lossy-2",
          signal: AbortSignal.timeout(500),
        })
        expect(refused).toBeNull()
      } finally {
        setLogSink((line) => process.stderr.write(`${line}\n`))
      }
      expect(lines.join("\n")).toContain("make a new one with `chimera nodes join-token --node lossy-2`")
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 30_000)

  test("a join token given beside a stored credential: an answer lost after the control plane took it is asked again", async () => {
    await using cp = await startInProcess()
    const dir = await mkdtemp(join(tmpdir(), "chimera-enrol-again-"))
    try {
      const stateDir = openStateDir(join(dir, "state"))
      let bearer: string | null = null
      const real = createControlClient({ baseUrl: cp.url, nodeId: "again-1", credential: () => bearer })
      const tokenFor = async (nodeId?: string) =>
        (
          (await (
            await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify(nodeId ? { nodeId } : {}) })
          ).json()) as { token: string }
        ).token
      const input = (client: OrchestratorPort, joinToken: string) => ({
        client,
        stateDir,
        nodeId: "again-1",
        joinToken,
        controlUrl: cp.url,
        hostname: "again-1",
        signal: AbortSignal.timeout(20_000),
      })
      const stored = (await enroll(input(real, await tokenFor()))) as string
      expect((await cp.api("/api/nodes/again-1/revoke", { method: "POST" })).status).toBe(200)
      // The operator's token for the revoked node reaches the control plane, which takes it; the
      // answer never arrives (a timeout, a reset). Kept, the stored credential is refused for good.
      let attempts = 0
      const lossy: OrchestratorPort = {
        ...real,
        async enroll(token, request) {
          attempts++
          const answer = await real.enroll(token, request)
          if (attempts === 1) throw new ControlError("POST api/agent/enroll: the operation timed out", null)
          return answer
        },
      }
      // The agent starts with the stored credential at once and asks again meanwhile.
      let replaced: string | null = null
      bearer = await enrollAgain(input(lossy, await tokenFor("again-1")), stored, (next) => {
        replaced = next
      })
      expect(bearer).toBe(stored)
      for (let waited = 0; replaced === null && waited < 10_000; waited += 50) await Bun.sleep(50)
      expect(attempts).toBe(2)
      expect(replaced).not.toBeNull()
      bearer = replaced as string | null
      expect(bearer).not.toBe(stored)
      expect(stateDir.readCredential()?.credential).toBe(bearer as string)
      expect((await real.heartbeat(heartbeatBody("again-1") as NodeHealth)).desired).toBeNull()
      // A token the control plane refuses (spent) is not asked again: the stored credential stays.
      const spent = await tokenFor("again-1")
      const other = createControlClient({ baseUrl: cp.url, nodeId: "again-1", credential: () => null })
      await other.enroll(spent, { nodeId: "again-1", hostname: "x", agentVersion: "t", credentialHash: "0".repeat(64) })
      attempts = 0
      const counted: OrchestratorPort = {
        ...real,
        enroll(token, request) {
          attempts++
          return real.enroll(token, request)
        },
      }
      expect(await enrollAgain(input(counted, spent), "chm_node_kept", () => attempts++)).toBe("chm_node_kept")
      await Bun.sleep(1500)
      expect(attempts).toBe(1)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
