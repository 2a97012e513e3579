// A machine the control plane's configuration names ([fleet.nodes]) is enrolled only with a join token
// issued for it. With a token for no node in particular (one leaked, say), an agent enrolled as
// `web-1` answered for the real web-1: congruence read "congruent" from it, relayed commands (their
// text as typed) went to it, and the dashboard showed it as the machine.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

let cp: TestControlPlane

beforeAll(async () => {
  // Named machines the control plane would reach over SSH; nothing here dials them.
  const named = ["web-1"].map((name) => ({ name, address: `root@${name}.invalid`, tags: ["web"] }))
  cp = await startInProcess({
    commandTargets: commandTargets(
      { nodes: named, targets: [] },
      { knownHosts: join(tmpdir(), "chimera-enrol-configured-known-hosts") },
    ),
  })
})
afterAll(() => cp?.stop())

const joinToken = async (nodeId?: string) =>
  (
    (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId }) })).json()) as {
      token: string
    }
  ).token

const enrol = (token: string, nodeId: string) =>
  fetch(`${cp.url}/api/agent/enroll`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ nodeId, hostname: nodeId, agentVersion: "1.0" }),
  })

test("a token for no node in particular enrols a new name, not a machine of [fleet.nodes]", async () => {
  const general = await joinToken()
  const refused = await enrol(general, "web-1")
  expect(refused.status).toBe(401)
  expect(((await refused.json()) as { error: string }).error).toContain("chimera nodes join-token --node web-1")
  // Nor the name in another case, which a dashboard would show beside it.
  expect((await enrol(general, "WEB-1")).status).toBe(401)
  expect((await cp.api("/api/nodes/web-1")).status).toBe(404)
  // The refusal did not spend the token: it still enrols a name of its own.
  expect((await enrol(general, "lab-1")).status).toBe(201)
})

test("a token issued for the machine enrols it", async () => {
  expect((await enrol(await joinToken("web-1"), "web-1")).status).toBe(201)
  expect((await cp.api("/api/nodes/web-1")).status).toBe(200)
})
