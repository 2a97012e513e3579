// A deploy runs in the control plane that started it; when that process stops (a replica killed, a
// restart) the deploy never finishes, and GET /api/deployments/{id} used to answer `running` for
// ever, so `chimera deploy` through another replica waited for ever. The replica's name travels in
// the deploy's start; on its own host the process is checked, and on PostgreSQL a replica elsewhere
// is alive while it holds a connection named after it (application_name).
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SQL } from "bun"
import { createEventBus } from "../control/adapters/event-bus.ts"
import { createNix } from "../control/adapters/nix.ts"
import { instanceTag } from "../control/adapters/process-instance.ts"
import { replicaLiveness, replicaName } from "../control/adapters/replica-liveness.ts"
import { deploymentStore } from "../control/adapters/store/deployment-store.ts"
import { openDatabase, sqlStore } from "../control/adapters/store/sql-store.ts"
import { deploymentId } from "../control/domain/deployment-record.ts"
import { createFleet } from "../control/domain/fleet.ts"
import { systemClock } from "../control/domain/ports.ts"
import { createFleetOperations } from "../control/ops/fleet-operations.ts"
import { startInProcess } from "./support/control-plane.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { goneReplica, leaveStoppedDeploy } from "./support/stopped-deploy.ts"
import { openTestStore } from "./support/store.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

async function operations(db: SQL, dialect: "sqlite" | "postgres", goneAfterMs = 0) {
  const store = sqlStore(db, dialect)
  const fleet = createFleet({ store, bus: createEventBus(), clock: systemClock })
  const ops = createFleetOperations({
    fleet,
    deployments: deploymentStore(db),
    nix: createNix(),
    targets: null,
    clock: systemClock,
    replica: replicaName(),
    replicaAlive: replicaLiveness(db, dialect, goneAfterMs),
  })
  /** A deploy started by `replica` (undefined: by a control plane from before replicas were named). */
  const started = async (replica?: string) => {
    const id = deploymentId(new Date(Date.now() - 1000).toISOString())
    await fleet.note("deployment.started", null, {
      id,
      actor: "admin",
      targets: ["web1"],
      ...(replica ? { replica } : {}),
    })
    await fleet.note("deployment.progress", null, { id, target: "web1", phase: "copy", message: "copying" })
    return id
  }
  return { ops, started }
}

describe("a deploy whose control plane stopped", () => {
  let sqlite: Awaited<ReturnType<typeof openTestStore>>
  beforeAll(async () => {
    sqlite = await openTestStore("deploy-interrupted")
  })
  afterAll(() => sqlite.close())

  test("on its own host: running while that process runs, interrupted once it is gone", async () => {
    const { ops, started } = await operations(sqlite.db, "sqlite")
    const dead = await ops.get(await started(goneReplica()))
    expect(dead).toMatchObject({ status: "interrupted", targets: ["web1"], progress: { web1: "copy: copying" } })
    expect((dead as { reason: string }).reason).toContain("stopped before it finished")

    const other = Bun.spawn(["sleep", "30"])
    try {
      const name = replicaName().replace(/\/\d+:[\d?]+$/, `/${instanceTag(other.pid)}`)
      const id = await started(name)
      expect((await ops.get(id)).status).toBe("running")
      other.kill()
      await other.exited
      expect((await ops.get(id)).status).toBe("interrupted")
    } finally {
      other.kill()
    }
  })

  test("one this process started and no longer runs, with no record, is interrupted", async () => {
    const { ops, started } = await operations(sqlite.db, "sqlite")
    expect((await ops.get(await started(replicaName()))).status).toBe("interrupted")
  })

  test("a start that names no replica (an older control plane) still answers running", async () => {
    const { ops, started } = await operations(sqlite.db, "sqlite")
    expect((await ops.get(await started())).status).toBe("running")
  })
})

describe("on PostgreSQL, a replica on another host", () => {
  let pg: TestPostgres
  let url: string
  beforeAll(async () => {
    pg = await startPostgres()
    url = await pg.database("deploy_interrupted")
  })
  afterAll(() => pg.stop())

  test("is alive while PostgreSQL lists a connection named after it, interrupted after", async () => {
    const { db, dialect } = await openDatabase(url)
    try {
      await sqlStore(db, dialect).migrate()
      const { ops, started } = await operations(db, dialect)
      const name = "chimera/elsewhere/4242:987654"
      const connect = async () => {
        const replica = new SQL({ url, connection: { application_name: name } })
        await replica`SELECT 1`
        return replica
      }
      const { ops: patient } = await operations(db, dialect, 1500)
      let replica = await connect()
      const id = await started(name)
      expect((await ops.get(id)).status).toBe("running")
      // Its connection drops for a moment and comes back: still running, its absence forgotten.
      await replica.close()
      const statusOf = async (o: typeof ops) => (await o.get(id)).status
      const untilGone = async (o: typeof ops) => {
        const deadline = Date.now() + 10_000
        let status = await statusOf(o)
        while (status !== "interrupted" && Date.now() < deadline) {
          await Bun.sleep(100)
          status = await statusOf(o)
        }
        return status
      }
      expect(await statusOf(patient)).toBe("running")
      replica = await connect()
      expect(await statusOf(patient)).toBe("running")
      // Gone: at once with no window, and once absent for the whole window (1.5 s) otherwise.
      await replica.close()
      expect(await untilGone(ops)).toBe("interrupted")
      const t0 = Date.now()
      expect(await untilGone(patient)).toBe("interrupted")
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400)
      // This replica's own connections carry its name.
      const own = (await db`SELECT 1 FROM pg_stat_activity WHERE application_name = ${replicaName()}`) as unknown[]
      expect(own.length).toBeGreaterThan(0)
    } finally {
      await sqlStore(db, dialect).close()
    }
  })
})

describe("through the API and the CLI", () => {
  test("`chimera deployments ID` shows an interrupted deploy's progress and reason, and exits 1", async () => {
    await using cp = await startInProcess()
    // The deploy a stopped control plane started two minutes ago, its last event a minute ago.
    const id = await leaveStoppedDeploy(cp.dataDir, "web1")
    const res = await cp.api(`/api/deployments/${id}`)
    expect(res.status).toBe(200)
    const view = (await res.json()) as Record<string, unknown>
    expect(view).toMatchObject({ id, status: "interrupted", targets: ["web1"], progress: { web1: "copy: copying" } })
    expect(view).not.toHaveProperty("replica") // which host and process ran it is not every viewer's business

    const home = await mkdtemp(join(tmpdir(), "chimera-interrupted-"))
    try {
      const cli = await run([process.execPath, MAIN, "deployments", id], {
        env: { ...process.env, HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" },
      })
      expect(cli.code).toBe(1)
      expect(cli.stdout).toContain("copy: copying")
      expect(cli.stdout).toContain(`deploy ${id}: interrupted`)
      expect(cli.stdout).toContain("stopped before it finished")
      // `show` as for incidents says the same.
      const shown = await run([process.execPath, MAIN, "deployments", "show", id], {
        env: { ...process.env, HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" },
      })
      expect({ code: shown.code, stdout: shown.stdout }).toEqual({ code: 1, stdout: cli.stdout })
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  })
})
