// `chimera nodes show`, `set-desired` and `run --nodes` with an id no node has name the nearest and
// the known nodes, as `chimera events --node` does, not only "not found"; a [fleet.nodes] name not
// enrolled yet is said to be that, with how to enrol it. `chimera nodes revoke` takes a node's credential away.
import { expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

test("an unknown node id is an error naming the nearest and the known nodes", async () => {
  await using cp = await startInProcess()
  const home = await mkdtemp(join(tmpdir(), "chimera-cli-nodes-"))
  try {
    const inventory = join(home, "chimera.toml")
    await writeFile(inventory, '[fleet.nodes.node-3]\naddress = "root@127.0.0.1:22"\n')
    const nodes = (...args: string[]) =>
      run([process.execPath, MAIN, "nodes", ...args], {
        env: {
          HOME: home,
          CHIMERA_URL: cp.url,
          CHIMERA_TOKEN: cp.adminToken,
          CHIMERA_CONFIG_FILE: inventory,
          NO_COLOR: "1",
        },
      })
    await enrollNode(cp, "node-2")
    await enrollNode(cp, "node-1")
    for (const args of [
      ["show", "node1"],
      ["set-desired", "node1", GEN1],
    ]) {
      const r = await nodes(...args)
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 1, stdout: "" })
      expect(r.stderr).toBe('error no node "node1" (did you mean node-1? known: node-1, node-2)\n')
    }
    const far = await nodes("show", "db-7")
    expect(far.stderr).toBe('error no node "db-7" (known: node-1, node-2)\n')
    const inInventory = await nodes("set-desired", "node-3", GEN1)
    expect(inInventory.stderr).toBe(
      'error node "node-3" is in [fleet.nodes] but its agent has not enrolled: `chimera nodes join-token --node node-3` prints how\n',
    )
    expect((await nodes("show", "node-1")).code).toBe(0)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}, 30_000)

test("`chimera nodes revoke` revokes a node's credential, which is refused from then on", async () => {
  await using cp = await startInProcess()
  const home = await mkdtemp(join(tmpdir(), "chimera-cli-nodes-"))
  try {
    const env = {
      HOME: home,
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_CONFIG_FILE: "",
      NO_COLOR: "1",
    }
    const credential = await enrollNode(cp, "node-1")
    const revoked = await run([process.execPath, MAIN, "nodes", "revoke", "node-1", "--json"], { env })
    expect({ code: revoked.code, stderr: revoked.stderr }).toEqual({ code: 0, stderr: "" })
    expect(JSON.parse(revoked.stdout)).toEqual({ nodeId: "node-1", revoked: true, alreadyRevoked: false })
    const beat = await call(cp, credential, "POST", "/api/agent/node-1/heartbeat", heartbeatBody("node-1"))
    expect(beat.status).toBe(401)
    // Again: it says so, and records no second revocation.
    const again = await run([process.execPath, MAIN, "nodes", "revoke", "node-1"], { env })
    expect({ code: again.code, stdout: again.stdout.split("\n")[0] }).toEqual({
      code: 0,
      stdout: "node-1 was already revoked: its agent stays refused",
    })
    const revocations = (await (await cp.api("/api/events?node=node-1&type=node.revoked")).json()) as {
      events: unknown[]
    }
    expect(revocations.events).toHaveLength(1)
    // Listed and shown as revoked, not as whatever its last heartbeat made it.
    const listed = await run([process.execPath, MAIN, "nodes", "list"], { env })
    expect(listed.stdout.split("\n")[1]).toMatch(/^node-1 +revoked /)
    const shown = await run([process.execPath, MAIN, "nodes", "show", "node-1"], { env })
    expect(shown.stdout).toContain(
      "status     revoked (credential revoked; enrol it again with a join token: chimera nodes join-token --node node-1)",
    )
    const json = await run([process.execPath, MAIN, "nodes", "show", "node-1", "--json"], { env })
    expect(JSON.parse(json.stdout)).toMatchObject({ id: "node-1", revoked: true })
    const typo = await run([process.execPath, MAIN, "nodes", "revoke", "node1"], { env })
    expect({ code: typo.code, stderr: typo.stderr }).toEqual({
      code: 1,
      stderr: 'error no node "node1" (did you mean node-1? known: node-1)\n',
    })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test("`chimera nodes run --nodes` names an unknown node as `nodes show` does, not only `node not enrolled`", async () => {
  await using cp = await startInProcess()
  const home = await mkdtemp(join(tmpdir(), "chimera-cli-nodes-"))
  try {
    const inventory = join(home, "chimera.toml")
    await writeFile(inventory, '[fleet.nodes.node-3]\naddress = "root@127.0.0.1:22"\n')
    const env = {
      HOME: home,
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_CONFIG_FILE: inventory,
      NO_COLOR: "1",
    }
    await enrollNode(cp, "node-1")
    const nodesRun = (nodes: string) =>
      run([process.execPath, MAIN, "nodes", "run", "--nodes", nodes, "--timeout", "1", "--", "true"], { env })
    // Before: "error node not enrolled: node-3 (404 NOT_FOUND)", with no word on how to enrol it.
    const notEnrolled = await nodesRun("node-3")
    expect({ code: notEnrolled.code, stdout: notEnrolled.stdout, stderr: notEnrolled.stderr }).toEqual({
      code: 1,
      stdout: "",
      stderr:
        'error node "node-3" is in [fleet.nodes] but its agent has not enrolled: `chimera nodes join-token --node node-3` prints how\n',
    })
    const typo = await nodesRun("node1,node-1")
    expect({ code: typo.code, stderr: typo.stderr }).toEqual({
      code: 1,
      stderr: 'error no node "node1" (did you mean node-1? known: node-1)\n',
    })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}, 30_000)
