// A deploy runs in the control plane that started it; when that process stops (a replica killed, a
// restart) the deploy never finishes, and GET /api/deployments/{id} used to answer `running` for
// ever, so `chimera deploy` through another replica waited for ever. The replica's name travels in
// the deploy's start; on its own host the process is checked, and on PostgreSQL a replica elsewhere
// is alive while it holds a connection named after it (application_name).
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { SQL } from "bun"
import { createEventBus } from "../control/adapters/event-bus.ts"
import { createNix } from "../control/adapters/nix.ts"
import { instanceTag } from "../control/adapters/process-instance.ts"
import { replicaLiveness, replicaName } from "../control/adapters/replica-liveness.ts"
import { deploymentStore } from "../control/adapters/store/deployment-store.ts"
import { openDatabase, sqlStore } from "../control/adapters/store/sql-store.ts"
import { deploymentId } from "../control/domain/deploy.ts"
import { createFleet } from "../control/domain/fleet.ts"
import { systemClock } from "../control/domain/ports.ts"
import { createFleetOperations, INTERRUPTED_AFTER_MS } from "../control/ops/fleet-operations.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { openTestStore } from "./support/store.ts"

/** A name on this host whose process is not running: this PID with a start time it never had. */
const gone = () => replicaName().replace(/\/\d+:[\d?]+$/, `/${process.pid}:1`)

async function operations(db: SQL, dialect: "sqlite" | "postgres", quietMs = 0) {
  const store = sqlStore(db, dialect)
  const fleet = createFleet({ store, bus: createEventBus(), clock: systemClock })
  const ops = createFleetOperations({
    fleet,
    deployments: deploymentStore(db),
    nix: createNix(),
    targets: null,
    clock: systemClock,
    replica: replicaName(),
    replicaAlive: replicaLiveness(db, dialect),
    interruptedAfterMs: quietMs,
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
    const dead = await ops.get(await started(gone()))
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

  test("a gone replica's deploy with an event in the last INTERRUPTED_AFTER_MS is still running", async () => {
    // Its connection to PostgreSQL may have dropped for a moment: a replica that runs says so with events.
    const { ops, started } = await operations(sqlite.db, "sqlite", INTERRUPTED_AFTER_MS)
    expect((await ops.get(await started(gone()))).status).toBe("running")
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
      const replica = new SQL({ url, connection: { application_name: name } })
      await replica`SELECT 1`
      const id = await started(name)
      expect((await ops.get(id)).status).toBe("running")
      await replica.close()
      const deadline = Date.now() + 10_000
      let status = (await ops.get(id)).status
      while (status !== "interrupted" && Date.now() < deadline) {
        await Bun.sleep(100)
        status = (await ops.get(id)).status
      }
      expect(status).toBe("interrupted")
      // This replica's own connections carry its name.
      const own = (await db`SELECT 1 FROM pg_stat_activity WHERE application_name = ${replicaName()}`) as unknown[]
      expect(own.length).toBeGreaterThan(0)
    } finally {
      await sqlStore(db, dialect).close()
    }
  })
})
