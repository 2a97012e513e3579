import { describe, expect, test } from "bun:test"
import { statSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { NodeHealth } from "../protocol/agent.ts"
import { heartbeatBody } from "../tests/support/auth.ts"
import { startInProcess } from "../tests/support/control-plane.ts"
import { ControlError, createControlClient } from "./control-client.ts"
import { createCredentialRotator } from "./credential-rotation.ts"
import { openStateDir } from "./state-dir.ts"

describe("credential rotation (agent side)", () => {
  test("asked by the heartbeat, the agent stores a new credential, uses it, and the old one stops", async () => {
    await using cp = await startInProcess()
    const dir = await mkdtemp(join(tmpdir(), "chimera-rotate-"))
    try {
      const stateDir = openStateDir(join(dir, "state"))
      let bearer: string | null = null
      const client = createControlClient({ baseUrl: cp.url, nodeId: "rot-1", credential: () => bearer })
      const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
        token: string
      }
      const enrolled = await client.enroll(token, { nodeId: "rot-1", hostname: "rot-1", agentVersion: "t" })
      bearer = enrolled.credential ?? null
      stateDir.writeCredential({
        nodeId: "rot-1",
        credential: bearer ?? "",
        controlUrl: cp.url,
        enrolledAt: new Date().toISOString(),
      })
      const health = heartbeatBody("rot-1") as NodeHealth
      expect((await client.heartbeat(health)).rotateCredential).toBeUndefined()

      expect((await cp.api("/api/nodes/rot-1/rotate-credential", { method: "POST" })).status).toBe(200)
      expect((await client.heartbeat(health)).rotateCredential).toBe(true)

      const old = bearer
      const rotate = createCredentialRotator({
        client,
        stateDir,
        nodeId: "rot-1",
        controlUrl: cp.url,
        use: (next) => {
          bearer = next
        },
      })
      expect(await rotate()).toBe(true)
      expect(bearer).not.toBe(old)
      expect(stateDir.readCredential()?.credential).toBe(bearer as unknown as string)
      expect(statSync(join(dir, "state", "credential.json")).mode & 0o777).toBe(0o600)

      expect((await client.heartbeat(health)).rotateCredential).toBeUndefined()
      const stale = createControlClient({ baseUrl: cp.url, nodeId: "rot-1", credential: () => old })
      const refused = await stale.heartbeat(health).catch((e: unknown) => e)
      expect(refused).toBeInstanceOf(ControlError)
      expect((refused as ControlError).status).toBe(401)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test("a failed rotation keeps the current credential and reports false", async () => {
    await using cp = await startInProcess()
    const dir = await mkdtemp(join(tmpdir(), "chimera-rotate-"))
    try {
      const stateDir = openStateDir(join(dir, "state"))
      let bearer: string | null = "chm_node_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
      const client = createControlClient({ baseUrl: cp.url, nodeId: "rot-2", credential: () => bearer })
      const rotate = createCredentialRotator({
        client,
        stateDir,
        nodeId: "rot-2",
        controlUrl: cp.url,
        use: (next) => {
          bearer = next
        },
      })
      expect(await rotate()).toBe(false)
      expect(bearer).toBe("chm_node_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
      expect(stateDir.readCredential()).toBeNull()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
