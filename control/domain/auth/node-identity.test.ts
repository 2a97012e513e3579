// Rotation racing revocation, over a real SQLite store: a node's request that authenticated just
// before an admin revoked it must not come back with a credential that works.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { openTestStore } from "../../../tests/support/store.ts"
import { createEventBus } from "../../adapters/event-bus.ts"
import { createAuthStore } from "../../adapters/store/auth-store.ts"
import { createFleet, type Fleet } from "../fleet.ts"
import { systemClock } from "../ports.ts"
import { hashToken } from "../tokens.ts"
import { createNodeIdentity, type NodeIdentity } from "./node-identity.ts"
import type { AuthStorePort } from "./ports.ts"

let opened: Awaited<ReturnType<typeof openTestStore>>
let fleet: Fleet
let authStore: AuthStorePort
let identity: NodeIdentity

beforeAll(async () => {
  opened = await openTestStore("node-identity")
  const { store, db, dialect } = opened
  authStore = createAuthStore(db, dialect)
  const bus = createEventBus()
  fleet = createFleet({ store, bus, clock: systemClock })
  identity = createNodeIdentity({ authStore, store, bus, clock: systemClock })
})

afterAll(() => opened.close())

const enrol = async (nodeId: string) => {
  const { token } = await fleet.createJoinToken({ nodeId })
  const { credential } = await fleet.enroll(token, { nodeId, hostname: nodeId, agentVersion: "t" })
  if (!credential) throw new Error("enrolment without credentialHash answers the credential")
  return credential
}
const nodeOf = async (credential: string) =>
  (await authStore.nodeForCredential(hashToken(credential), new Date().toISOString()))?.nodeId ?? null

describe("node identity", () => {
  test("a rotation asked for before a revocation and served after it is refused; nothing gets back in", async () => {
    const current = await enrol("racer")
    expect(await nodeOf(current)).toBe("racer") // the request authenticated…
    await identity.revoke("racer") // …then an admin revoked the node…
    // …and only then does the request reach the rotation.
    await expect(identity.issueRotated("racer", current)).rejects.toThrow("revoked or replaced")
    expect(await nodeOf(current)).toBeNull()
  })

  test("a rotation with the node's current credential is pending until first used, then replaces it", async () => {
    const current = await enrol("rotor")
    const { credential } = await identity.issueRotated("rotor", current)
    expect(await nodeOf(current)).toBe("rotor")
    expect(await nodeOf(credential)).toBe("rotor")
    expect(await nodeOf(current)).toBeNull()
    // The replaced credential cannot ask for another.
    await expect(identity.issueRotated("rotor", current)).rejects.toThrow("revoked or replaced")
  })
})
