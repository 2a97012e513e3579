// A change that reaches the whole fleet at once (a deploy's new desired closure, a network outage that
// makes every node unreachable, agents enrolling again) brings one event per node. The page read each
// such node again on its own, twice or more (GET /api/nodes/ID), so a change to 150 nodes cost one tab
// 300 requests: the whole of a user's API rate limit for a minute (300), after which every view of the
// dashboard answered "Rate limit exceeded". Nodes changed together are read together. Real Chromium,
// real API.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { signInWithToken } from "./support/dashboard.ts"
import { waitFor } from "./support/wait.ts"

const NODES = 150
const GEN2 = "/nix/store/zzzzw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-2"

let cp: TestControlPlane
let browser: TestBrowser
const ids = Array.from({ length: NODES }, (_, i) => `fw-${String(i).padStart(3, "0")}`)

beforeAll(async () => {
  cp = await startInProcess()
  browser = await launchBrowser()
  for (const id of ids) {
    const credential = await enrollNode(cp, id)
    expect((await call(cp, credential, "POST", `/api/agent/${id}/heartbeat`, heartbeatBody(id))).status).toBe(200)
  }
}, 120_000)
afterAll(async () => {
  await browser?.close()
  await cp?.stop()
})

/** Shown desired hashes of the rows drawn in the fleet table. */
const shownDesired = (page: import("playwright-core").Page) =>
  page.evaluate(() => {
    const { document } = globalThis as unknown as {
      document: { querySelectorAll(s: string): Iterable<{ children: ArrayLike<{ textContent: string | null }> }> }
    }
    return [...document.querySelectorAll("table.grid[aria-label=Nodes] tbody tr:not(.spacer)")].map(
      (tr) => tr.children[2]?.textContent ?? "",
    )
  })

test("a new desired closure for 150 nodes at once costs the page a few reads of the fleet, not one or more per node", async () => {
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page
    .getByTestId("count-all")
    .filter({ hasText: String(NODES) })
    .waitFor()
  await page.waitForTimeout(500)
  const reads: string[] = []
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname
    if (/^\/api\/nodes(\/[^/]+)?$/.test(path)) reads.push(path)
  })

  for (const id of ids)
    expect((await call(cp, cp.adminToken, "PUT", `/api/nodes/${id}/desired`, { closure: GEN2 })).status).toBe(200)

  // Every row drawn shows the new closure, read from the API after its event.
  await waitFor(
    "the rows to show the new desired closure",
    () => shownDesired(page),
    (hashes) => hashes.length > 0 && hashes.every((h) => h === GEN2.slice(11, 23)),
    30_000,
  )
  // The reads an event schedules are done within a second; the periodic refresh is 15 s away.
  await page.waitForTimeout(2_000)
  expect(reads.length).toBeLessThanOrEqual(10)
  expect(browser.problems).toEqual([])
}, 120_000)

// The deployments list reads again when a desired closure changes (a deploy publishes one per target
// it confirmed): once per event, it read the list (up to 100 records, 8 MiB) 150 times for one deploy.
test("the deployments page reads its list once for a deploy's 150 desired closures, not once each", async () => {
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/deployments`)
  await page.getByRole("heading", { name: "Deployments and heals" }).waitFor()
  await page.getByText("Nothing deployed yet").waitFor()
  const reads: string[] = []
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname
    if (path.startsWith("/api/deployments")) reads.push(path)
  })
  const GEN3 = GEN2.replace("zzzz", "yyyy")
  for (const id of ids)
    expect((await call(cp, cp.adminToken, "PUT", `/api/nodes/${id}/desired`, { closure: GEN3 })).status).toBe(200)
  // The list is read again after the changes; then the page stays quiet (the next timed read is 15 s on).
  await waitFor(
    "the list to be read again",
    async () => reads.length,
    (n) => n >= 1,
    15_000,
  )
  await page.waitForTimeout(3_000)
  expect(reads.length).toBeGreaterThanOrEqual(1)
  expect(reads.length).toBeLessThanOrEqual(3)
  expect(browser.problems).toEqual([])
}, 120_000)
