// Who may write a deployment record through POST /api/deployments/records. Deployment ids are visible
// to every viewer, so a record names the principal that first reported it, and only that principal may
// write its id again (the CLI re-sends a record it could not confirm was kept); anyone else gets 409
// and the record stays as it was. A deploy the control plane ran (POST /api/deployments) is its own
// record: nobody rewrites it through /records, not even the admin who started it. On SQLite and on
// PostgreSQL, whose upserts are written alike.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import type { StorePath } from "../protocol/ids.ts"
import { addUser, call, enrollNode, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { cliRecord } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { waitFor } from "./support/wait.ts"

let closure: StorePath
let pg: TestPostgres

beforeAll(async () => {
  ;[closure, pg] = await Promise.all([buildTestSystem(1, { tag: "records" }), startPostgres()])
}, 120_000)
afterAll(() => pg?.stop())

/** A deploy record as `chimera deploy` reports it after running the deploy over SSH itself. */
/** The CLI's record of a deploy to web-1 that ended as `status` says, with `log` as its target's log. */
const record = (id: string, status: "succeeded" | "failed", log: string[]): DeploymentRecord =>
  cliRecord(id, closure, [
    {
      target: "web-1",
      status: status === "succeeded" ? "deployed" : "rolled-back",
      error: status === "succeeded" ? null : "health check failed: exit 1",
      log,
    },
  ])

const post = (cp: TestControlPlane, token: string, record: DeploymentRecord) =>
  call(cp, token, "POST", "/api/deployments/records", record)

const shown = async (cp: TestControlPlane, id: string) =>
  (await (await cp.api(`/api/deployments/${id}`)).json()) as DeploymentRecord

async function expectConflict(res: Response, says: string) {
  expect(res.status).toBe(409)
  const body = (await res.json()) as { code: string; error: string }
  expect(body.code).toBe("CONFLICT")
  expect(body.error).toContain(says)
}

for (const dialect of ["sqlite", "postgres"] as const) {
  describe(`deployment records (${dialect})`, () => {
    let cp: TestControlPlane
    let operator: string
    beforeAll(async () => {
      cp = await startInProcess(dialect === "postgres" ? { databaseUrl: await pg.database("records") } : {})
      await addUser(cp, "olga", "operator")
      operator = await login(cp, "olga")
    })
    afterAll(() => cp?.stop())

    test("an operator cannot overwrite an admin's record: 409, and the record stays as the admin left it", async () => {
      const id = "20261206020000-0ad41f00"
      const original = record(id, "failed", ["activating the new system", "health check failed: exit 1"])
      expect((await post(cp, cp.adminToken, original)).status).toBe(201)

      const forged = record(id, "succeeded", ["all good, nothing to see"])
      await expectConflict(await post(cp, operator, forged), "recorded by another user or API token")
      expect(await shown(cp, id)).toEqual(original)
    })

    test("the principal that reported a record may report it again, from any of its sessions, as the CLI does", async () => {
      const id = "20261206030000-0c11a0a0"
      expect((await post(cp, operator, record(id, "failed", ["first attempt"]))).status).toBe(201)
      const again = record(id, "succeeded", ["second attempt"])
      const otherSession = await login(cp, "olga")
      expect((await post(cp, otherSession, again)).status).toBe(201)
      expect(await shown(cp, id)).toEqual(again)
      // Its owner's word stands against the admin's too.
      await expectConflict(await post(cp, cp.adminToken, record(id, "failed", [])), "recorded by another")
      expect(await shown(cp, id)).toEqual(again)
    })

    test("a deploy the control plane ran cannot be rewritten through /records, even by the admin who ran it", async () => {
      const node = `rec-${dialect}`
      await enrollNode(cp, node)
      const started = await call(cp, cp.adminToken, "POST", "/api/deployments", {
        targets: [node],
        closure,
        dry_run: true,
      })
      expect(started.status).toBe(202)
      const { id } = (await started.json()) as { id: string }
      const ran = await waitFor(
        "the control plane's record",
        () => shown(cp, id),
        (r) => r.status === "planned",
      )

      for (const token of [operator, cp.adminToken]) {
        const res = await post(cp, token, { ...record(id, "succeeded", ["forged"]), createdAt: ran.createdAt })
        await expectConflict(res, "was run by the control plane")
      }
      expect(await shown(cp, id)).toEqual(ran)
    })
  })
}
