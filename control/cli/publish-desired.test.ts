// What a deploy says on stderr of the nodes whose desired closure it set, read from a real process,
// and what it says when a real control plane refuses one.
import { expect, test } from "bun:test"
import { join } from "node:path"
import { startInProcess } from "../../tests/support/control-plane.ts"
import { desiredPublisher } from "./publish-desired.ts"

test("the nodes are named in order, not in the order their targets were confirmed", async () => {
  const module = join(import.meta.dir, "publish-desired.ts")
  const script = `
    const { reportPublished } = await import(${JSON.stringify(module)})
    reportPublished({ published: ["web-2", "db-1", "web-1"], problems: [], publish: async () => {} }, false)
  `
  const proc = Bun.spawn([process.execPath, "-e", script], { env: { ...process.env, NO_COLOR: "1" }, stderr: "pipe" })
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
  expect({ code, stderr }).toEqual({
    code: 0,
    stderr: "desired closure set on the control plane for db-1, web-1, web-2\n",
  })
})

test("a refused desired closure is told in the API's words and code, not as its raw JSON body", async () => {
  await using cp = await startInProcess()
  const res = await cp.api("/api/tokens", { method: "POST", body: JSON.stringify({ name: "look", role: "viewer" }) })
  const { token } = (await res.json()) as { token: string }
  const publisher = desiredPublisher({ CHIMERA_URL: cp.url, CHIMERA_TOKEN: token, HOME: cp.dataDir })
  await publisher?.publish("node-1", "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1")
  expect(publisher?.published).toEqual([])
  const [problem] = publisher?.problems ?? []
  expect(problem).toStartWith(
    "node-1: the control plane refused the desired closure: PUT /api/nodes/:id/desired needs the fleet:deploy permission (role operator or above); look is viewer (403 PERMISSION_DENIED)",
  )
  expect(problem).not.toContain('{"error"')
})
