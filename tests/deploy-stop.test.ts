// A control plane stopping while deploys run. A deploy through an agent may wait an hour for its
// report (its confirm timeout and a grace); the stop does not wait for that: the deploy ends at once,
// recorded as failed with the reason, and the node keeps the closure as its desired one. Deploys run
// at once are capped: past the cap a new one is refused (429) until one ends.
import { Database } from "bun:sqlite"
import { expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MAX_RUNNING_DEPLOYS } from "../control/ops/running-deploys.ts"
import { call, enrollNode } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { waitFor } from "./support/wait.ts"

test("a stop ends a deploy waiting on an agent at once, recorded as failed with the reason", async () => {
  const closure = await buildTestSystem("stop-1")
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-deploy-stop-"))
  const cp = await startInProcess({ dataDir })
  await enrollNode(cp, "quiet-1") // an agent that never reports
  const started = await call(cp, cp.adminToken, "POST", "/api/deployments", {
    targets: ["quiet-1"],
    closure,
    confirm_timeout_seconds: 3600,
  })
  expect(started.status).toBe(202)
  const { id } = (await started.json()) as { id: string }

  const t0 = performance.now()
  await cp.stop()
  // Not the hour the deploy would wait, nor the stop's 10 s grace for deploys over SSH.
  expect(performance.now() - t0).toBeLessThan(5_000)

  const db = new Database(join(dataDir, "chimera.db"), { readonly: true })
  const row = db.query("SELECT status, record FROM deployments WHERE id = ?").get(id) as {
    status: string
    record: string
  } | null
  const desired = db.query("SELECT desired_path FROM nodes WHERE id = 'quiet-1'").get() as { desired_path: string }
  db.close()
  expect(row?.status).toBe("failed")
  const record = JSON.parse(row?.record ?? "{}") as { targets: { target: string; status: string; error: string }[] }
  expect(record.targets).toMatchObject([{ target: "quiet-1", status: "failed" }])
  expect(record.targets[0]?.error).toContain("the control plane stopped before the agent reported the closure running")
  expect(desired.desired_path).toBe(closure)
  await rm(dataDir, { recursive: true, force: true })
})

test("deploys past the cap are refused until one ends; a newer closure ends the deploy it supersedes", async () => {
  const [first, second] = [await buildTestSystem("cap-1"), await buildTestSystem("cap-2")]
  await using cp = await startInProcess()
  const nodes = Array.from({ length: MAX_RUNNING_DEPLOYS }, (_, i) => `cap-${i}`)
  for (const n of nodes) await enrollNode(cp, n)
  await enrollNode(cp, "cap-extra")
  const deploy = (target: string, closure: string) =>
    call(cp, cp.adminToken, "POST", "/api/deployments", { targets: [target], closure, confirm_timeout_seconds: 3600 })
  // Started together: only the cap's worth may pass, however the requests interleave.
  const targets = [...nodes, "cap-extra"]
  const answers = await Promise.all(targets.map((n) => deploy(n, first)))
  expect(answers.map((r) => r.status).sort()).toEqual([...Array(MAX_RUNNING_DEPLOYS).fill(202), 429])
  const refusedAt = answers.findIndex((r) => r.status === 429)
  expect(((await (answers[refusedAt] as Response).json()) as { error: string }).error).toContain(
    `${MAX_RUNNING_DEPLOYS} deploys are running on this control plane`,
  )
  const refusedNode = targets[refusedAt] as string
  const runningAt = refusedAt === 0 ? 1 : 0
  const runningNode = targets[runningAt] as string

  // A second closure for one node supersedes the first: that deploy ends, and a slot is free again.
  const { id } = (await (answers[runningAt] as Response).json()) as { id: string }
  expect((await call(cp, cp.adminToken, "PUT", `/api/nodes/${runningNode}/desired`, { closure: second })).status).toBe(
    200,
  )
  let record: { status: string; targets?: { error: string }[] } = { status: "running" }
  for (let i = 0; i < 100 && record.status === "running"; i++) {
    await Bun.sleep(50)
    record = (await (await call(cp, cp.adminToken, "GET", `/api/deployments/${id}`)).json()) as typeof record
  }
  expect(record.status).toBe("failed")
  expect(record.targets?.[0]?.error).toContain(`superseded: the node's desired closure is now ${second}`)
  expect((await deploy(refusedNode, first)).status).toBe(202)
})

// A deploy that ends on an error of its own (here: the store's nodes table gone from under it, as a
// broken schema would fail every look) has no outcome per target, but it has ended: it is recorded
// failed with why. With no record, its replica said "interrupted: the control plane that ran it
// stopped before it finished", which it had not.
test("a deploy that ends on an error is recorded failed with why, not called interrupted", async () => {
  const closure = await buildTestSystem("error-1")
  // Its data dir goes with it, after it stops: removed under it, its store's checkpoints would fail.
  await using cp = await startInProcess()
  await enrollNode(cp, "broken-1")
  const started = await call(cp, cp.adminToken, "POST", "/api/deployments", {
    targets: ["broken-1"],
    closure,
    confirm_timeout_seconds: 3600,
  })
  expect(started.status).toBe(202)
  const { id } = (await started.json()) as { id: string }
  const view = async () =>
    (await (await call(cp, cp.adminToken, "GET", `/api/deployments/${id}`)).json()) as {
      status: string
      targets: { target: string; status: string; error: string }[]
    }
  await waitFor(
    "the deploy waiting for the agent",
    async () => ((await view()) as unknown as { progress?: Record<string, string> }).progress ?? {},
    (progress) => Object.keys(progress).length > 0,
  )
  const db = new Database(join(cp.dataDir, "chimera.db"))
  db.run("ALTER TABLE nodes RENAME TO nodes_moved")
  db.close()
  const ended = await waitFor("the deploy's end", view, (d) => d.status !== "running")
  expect(ended.status).toBe("failed")
  expect(ended.targets).toMatchObject([{ target: "broken-1", status: "failed" }])
  expect(ended.targets[0]?.error).toContain("the deploy ended on an error before its targets' outcomes were known")
})
