// What one page of GET /api/deployments costs. Each record keeps its targets' logs (up to 1 MiB as the
// CLI reports it), and the list answered `limit` whole records (up to 1,000): a viewer's one request
// after 250 reported records was a 200 MB answer, 1.5 GB of the control plane's memory at its peak and
// two seconds of its event loop. A page now stops before 8 MiB of records, newest first, always one.
import { describe, expect, test } from "bun:test"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import { addUser, call, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { cliRecord } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"

const LOG = Array.from({ length: 200 }, (_, i) => `${i} ${"x".repeat(3990)}`)

describe("the deployments list", () => {
  test("a page holds no more than 8 MiB of records, newest first, whatever the limit", async () => {
    const closure = await buildTestSystem(1, { tag: "list-size" })
    await using cp = await startInProcess()
    await addUser(cp, "vera", "viewer")
    await addUser(cp, "olga", "operator")
    const [viewer, operator] = await Promise.all([login(cp, "vera"), login(cp, "olga")])
    // 30 records of 800 KB each, as a CLI reports deploys whose targets logged much.
    const ids: string[] = []
    for (let i = 0; i < 30; i++) {
      const id = `big-${String(i).padStart(2, "0")}`
      const record = cliRecord(id, closure, [{ target: "elsewhere-1", status: "deployed", log: LOG }])
      const res = await call(cp, operator, "POST", "/api/deployments/records", {
        ...record,
        createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
      })
      expect(res.status).toBe(201)
      ids.push(id)
    }
    const res = await call(cp, viewer, "GET", "/api/deployments?limit=1000")
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text.length).toBeLessThan(9 * 1024 * 1024)
    const listed = (JSON.parse(text) as { deployments: DeploymentRecord[] }).deployments.map((d) => d.id)
    expect(listed.length).toBeGreaterThan(0)
    expect(listed).toEqual(ids.toReversed().slice(0, listed.length))
    // The limit still holds below the budget.
    const one = (await (await call(cp, viewer, "GET", "/api/deployments?limit=1")).json()) as {
      deployments: DeploymentRecord[]
    }
    expect(one.deployments.map((d) => d.id)).toEqual(["big-29"])
  }, 120_000)
})
