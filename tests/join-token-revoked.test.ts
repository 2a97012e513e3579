// Revoking a node also cancels the join tokens still open for it (so a token handed out before the
// revocation cannot undo it). An agent enrolling with such a token is told that, and what to do, not
// that the token "was already used": nobody used it.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { call } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

let cp: TestControlPlane
beforeAll(async () => {
  cp = await startInProcess()
})
afterAll(async () => {
  await cp?.stop()
})

const joinToken = async (nodeId: string) =>
  ((await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId })).json()) as { token: string })
    .token
const enrol = (token: string, nodeId: string) =>
  call(cp, token, "POST", "/api/agent/enroll", { nodeId, hostname: nodeId, agentVersion: "t" })

test("a join token cancelled by the node's revocation says so, and how to get a new one", async () => {
  expect((await enrol(await joinToken("rv-1"), "rv-1")).status).toBe(201)
  const pending = await joinToken("rv-1")
  expect((await call(cp, cp.adminToken, "POST", "/api/nodes/rv-1/revoke")).status).toBe(200)
  const res = await enrol(pending, "rv-1")
  expect(res.status).toBe(401)
  const body = (await res.json()) as { error: string }
  expect(body.error).not.toContain("already used")
  expect(body.error).toContain("revoked")
  expect(body.error).toContain("chimera nodes join-token --node rv-1")
  // A fresh token enrols it again.
  expect((await enrol(await joinToken("rv-1"), "rv-1")).status).toBe(201)
  // A token really used is still "already used".
  const once = await joinToken("rv-2")
  expect((await enrol(once, "rv-2")).status).toBe(201)
  expect(((await (await enrol(once, "rv-2")).json()) as { error: string }).error).toContain("already used")
})
