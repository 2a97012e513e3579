// A node page reads the node's latest events, incidents and health history once when it opens (and
// the health history on its own timer), not again on every change anywhere in the fleet: each
// re-render of the frame made a new context object, and the page's effects re-ran on it, so a tab
// re-read 200 events on every fleet event and every 15 s refresh, and a few open tabs spent the
// token's rate limit.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { signInWithToken } from "./support/dashboard.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

let cp: TestControlPlane
let browser: TestBrowser

beforeAll(async () => {
  cp = await startInProcess()
  browser = await launchBrowser()
})
afterAll(async () => {
  await browser?.close()
  await cp?.stop()
})

const started = (attempt: number) => ({
  seq: attempt,
  at: new Date().toISOString(),
  type: "heal.started",
  data: { desired: GEN, attempt },
})

test("events elsewhere in the fleet do not make a node page read its events and incidents again", async () => {
  const watched = await enrollNode(cp, "read-1")
  const other = await enrollNode(cp, "read-2")
  for (const [id, cred] of [
    ["read-1", watched],
    ["read-2", other],
  ] as const)
    expect((await call(cp, cred, "POST", `/api/agent/${id}/heartbeat`, heartbeatBody(id))).status).toBe(200)

  const page = await browser.page()
  const reads: string[] = []
  page.on("request", (r) => {
    const u = new URL(r.url())
    if (u.pathname === "/api/events" && u.searchParams.get("node") === "read-1") reads.push("events")
    if (u.pathname === "/api/incidents" && u.searchParams.get("node") === "read-1") reads.push("incidents")
  })
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
  await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "read-1", exact: true }).click()
  await page.getByTestId("node-events").waitFor()
  const opened = { events: reads.filter((r) => r === "events").length }
  expect(opened.events).toBeGreaterThanOrEqual(1)

  // Other nodes' events reach the tab, then one of its own node's (so the others have been applied).
  for (let i = 1; i <= 3; i++) {
    const res = await call(cp, other, "POST", "/api/agent/read-2/reports", { reports: [started(i)] })
    expect(res.status).toBe(200)
  }
  expect((await call(cp, watched, "POST", "/api/agent/read-1/reports", { reports: [started(4242)] })).status).toBe(200)
  await page.getByTestId("node-events").getByText("attempt 4242").waitFor()

  expect(reads.filter((r) => r === "events").length).toBe(opened.events)
  expect(reads.filter((r) => r === "incidents").length).toBeLessThanOrEqual(1)
  expect(browser.problems.filter((p) => p.startsWith("pageerror"))).toEqual([])
  await page.close()
}, 60_000)
