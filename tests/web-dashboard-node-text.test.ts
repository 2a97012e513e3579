// Text a node reports, as the web dashboard shows it. A compromised node may put a bidi override
// (U+202E) or other control characters into a failed heal's error; shown raw, it reorders what the
// page says around it (a node could make its incident read as anything, and garble the delivery
// status next to it). The page escapes such characters as the CLI does. Also: a node link opened
// during sign-in, and a revoked node shown as revoked. Real Chromium, real API.
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { overflowX, signInWithToken } from "./support/dashboard.ts"
import { waitFor } from "./support/wait.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const SHOWN = "re-login at https://sso.example/auth"
// Stored backwards behind U+202E, it would read forwards on screen; ESC and BEL ride along.
const ERROR = `switch-to-configuration: \u202e${[...SHOWN].reverse().join("")} \u001b]52;c;aGk=\u0007`

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
// Each test's tabs close with it, and it answers for its own problems only: a tab left on a node's
// page keeps reading it, and what it met later (a removed node's 404) is no other test's doing.
beforeEach(() => {
  browser.problems.length = 0
})
afterEach(async () => {
  for (const open of browser.context.pages()) await open.close()
})

test("a failed heal's error holding a bidi override and escape codes is shown escaped, in order", async () => {
  const credential = await enrollNode(cp, "odd-1")
  expect((await call(cp, credential, "POST", "/api/agent/odd-1/heartbeat", heartbeatBody("odd-1"))).status).toBe(200)
  const report = {
    seq: 1,
    at: new Date().toISOString(),
    type: "heal.failed",
    data: { desired: GEN, attempt: 1, durationMs: 5, error: ERROR, output: "", retryInMs: null },
  }
  expect((await call(cp, credential, "POST", "/api/agent/odd-1/reports", { reports: [report] })).status).toBe(200)

  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/odd-1`)
  const text = await waitFor(
    "the failed heal on the node's page",
    () =>
      page.evaluate(
        () => (globalThis as unknown as { document: { body: { textContent: string } } }).document.body.textContent,
      ),
    (t) => t.includes("switch-to-configuration"),
  )
  expect(text).toContain("switch-to-configuration: \\u202e")
  expect(text).toContain("\\x1b]52;c;aGk=\\x07")
  expect(text).not.toContain("\u202e")
  expect(text).not.toContain("\u001b")
  expect(text).not.toContain(SHOWN)
  expect(browser.problems).toEqual([])
})

test("a node's link followed the moment the dashboard appears after sign-in opens that node", async () => {
  await enrollNode(cp, "quick-1")
  const page = await browser.page()
  await page.goto(cp.url)
  // The hash changes in the same task the signed-in frame is first rendered in: before the frame's
  // effects have run, so a listener added there never hears it.
  await page.evaluate(() => {
    const g = globalThis as unknown as {
      document: { body: object; querySelector(s: string): object | null }
      location: { hash: string }
      MutationObserver: new (f: () => void) => { observe(n: object, o: object): void; disconnect(): void }
    }
    const watch = new g.MutationObserver(() => {
      if (!g.document.querySelector('nav[aria-label="Views"]')) return
      watch.disconnect()
      g.location.hash = "#/nodes/quick-1"
    })
    watch.observe(g.document.body, { childList: true, subtree: true })
  })
  await page.getByLabel("API token", { exact: true }).check()
  await page.locator("#token").fill(cp.adminToken)
  await page.getByRole("button", { name: "Sign in" }).click()
  await page.getByRole("heading", { name: "quick-1" }).waitFor({ timeout: 15_000 })
  expect(browser.problems).toEqual([])
})

test("a revoked node shows as revoked in the fleet list and on its page, and a removed one leaves the list", async () => {
  for (const id of ["kept-1", "gone-1"]) {
    const credential = await enrollNode(cp, id)
    expect((await call(cp, credential, "POST", `/api/agent/${id}/heartbeat`, heartbeatBody(id))).status).toBe(200)
  }
  expect((await call(cp, cp.adminToken, "POST", "/api/nodes/gone-1/revoke")).status).toBe(200)

  const page = await browser.page()
  try {
    await signInWithToken(page, cp.url, cp.adminToken)
    const row = (id: string) =>
      page
        .getByRole("table", { name: "Nodes" })
        .getByRole("row")
        .filter({ has: page.getByRole("link", { name: id, exact: true }) })
    await row("gone-1").getByText("revoked", { exact: true }).waitFor()
    expect(await row("kept-1").getByText("revoked", { exact: true }).count()).toBe(0)
    await page.goto(`${cp.url}/#/nodes/gone-1`)
    await page.getByTestId("node-status").getByText("revoked", { exact: true }).waitFor()
    // Removed from the fleet: its row leaves the open list as the event arrives.
    await page.goto(`${cp.url}/#/`)
    await row("gone-1").waitFor()
    expect((await call(cp, cp.adminToken, "DELETE", "/api/nodes/gone-1")).status).toBe(200)
    await row("gone-1").waitFor({ state: "detached" })
    expect(await row("kept-1").count()).toBe(1)
    expect(browser.problems).toEqual([])
  } finally {
    await page.close()
  }
})

test("a node's long unbroken words (host name, disk path, heal error) wrap inside the page, not past it", async () => {
  const credential = await enrollNode(cp, "long-1")
  const beat = { ...heartbeatBody("long-1"), hostname: "h".repeat(255) }
  beat.disk.path = `/${"d".repeat(4095)}`
  expect((await call(cp, credential, "POST", "/api/agent/long-1/heartbeat", beat)).status).toBe(200)
  const report = {
    seq: 1,
    at: new Date().toISOString(),
    type: "heal.failed",
    data: { desired: GEN, attempt: 1, durationMs: 5, error: "e".repeat(4096), output: "", retryInMs: null },
  }
  expect((await call(cp, credential, "POST", "/api/agent/long-1/reports", { reports: [report] })).status).toBe(200)

  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/long-1`)
  // The incident the failed heal opened, with the error in its message, is the last thing drawn.
  await page.getByText("heal attempt 1 failed").first().waitFor({ timeout: 15_000 })
  await page.getByText("h".repeat(255)).waitFor()
  expect(await overflowX(page)).toBeLessThanOrEqual(0)
})

// A node chooses its id when a general join token enrols it: one of the 63 characters allowed, with no
// break in it, must not widen the fleet table or the latest events past the window. The id is cut
// short on screen with its whole self in the link's text and title.
test("a node id of 63 characters keeps the overview within the window, whole in its link", async () => {
  const id = `n${"x".repeat(61)}1`
  const credential = await enrollNode(cp, id)
  expect((await call(cp, credential, "POST", `/api/agent/${id}/heartbeat`, heartbeatBody(id))).status).toBe(200)
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  const link = page.getByTestId("latest-events").getByRole("link", { name: id })
  await link.first().waitFor()
  await page.getByRole("link", { name: id }).first().waitFor()
  expect(await overflowX(page)).toBeLessThanOrEqual(0)
  expect(await link.first().getAttribute("title")).toBe(id)
  expect(browser.problems).toEqual([])
})

// A node heard once has one sample, a span of zero, which uPlot widened to years (2027 to 2029 on an
// axis drawn in December 2026). The axis shows the 15 minutes the history keeps, up to that sample.
test("a node's chart with a single sample spans the last 15 minutes, not years", async () => {
  const credential = await enrollNode(cp, "once-1")
  expect((await call(cp, credential, "POST", "/api/agent/once-1/heartbeat", heartbeatBody("once-1"))).status).toBe(200)
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/once-1`)
  const chart = page.getByTestId("health-chart")
  await chart.locator("canvas").waitFor()
  const [from, to] = [
    Date.parse(`${await chart.getAttribute("data-from")}`),
    Date.parse(`${await chart.getAttribute("data-to")}`),
  ]
  expect(to - from).toBe(15 * 60_000)
  expect(Math.abs(to - Date.now())).toBeLessThan(60_000)
  expect(browser.problems).toEqual([])
})

// The chart reads its samples again every 10 s; after that read it must still follow its box's width
// (its resize observer went with the first read's effect).
test("a node's chart follows the window's width after its samples are read again", async () => {
  const credential = await enrollNode(cp, "wide-1")
  const beat = () => call(cp, credential, "POST", "/api/agent/wide-1/heartbeat", heartbeatBody("wide-1"))
  expect((await beat()).status).toBe(200)
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/wide-1`)
  const chart = page.getByTestId("health-chart")
  await chart.locator("canvas").waitFor()
  const first = await chart.getAttribute("data-to")
  // A second sample (5 s apart at least), and the page's next read of them.
  await Bun.sleep(5_100)
  expect((await beat()).status).toBe(200)
  await waitFor(
    "the chart's next read",
    () => chart.getAttribute("data-to"),
    (to) => to !== first,
    15_000,
  )
  // Narrower, the page lays out in one column: the chart's box changes width, and the chart with it.
  const widths = () =>
    chart.evaluate((box) => {
      const el = box as unknown as { clientWidth: number; querySelector(s: string): { clientWidth: number } | null }
      return { box: Math.max(240, el.clientWidth), canvas: el.querySelector("canvas")?.clientWidth ?? 0 }
    })
  const before = await widths()
  await page.setViewportSize({ width: 800, height: 800 })
  await waitFor("the chart to take its box's new width", widths, (w) => w.box !== before.box && w.canvas === w.box)
  expect(browser.problems).toEqual([])
}, 60_000)

// On a phone the incidents table (six columns) is wider than the window; like the node's other tables
// it scrolls inside its own box, and the page itself never scrolls sideways.
test("a node's incidents on a phone scroll inside their table, not the page", async () => {
  const credential = await enrollNode(cp, "phone-inc-1")
  const beat = () => call(cp, credential, "POST", "/api/agent/phone-inc-1/heartbeat", heartbeatBody("phone-inc-1"))
  expect((await beat()).status).toBe(200)
  const report = {
    seq: 1,
    at: new Date().toISOString(),
    type: "heal.failed",
    data: {
      desired: GEN,
      attempt: 1,
      durationMs: 5,
      error: "switch-to-configuration exited 1",
      output: "",
      retryInMs: null,
    },
  }
  expect((await call(cp, credential, "POST", "/api/agent/phone-inc-1/reports", { reports: [report] })).status).toBe(200)

  const page = await browser.page({ width: 390, height: 844 })
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/phone-inc-1`)
  await page.getByTestId("node-incidents").waitFor({ timeout: 15_000 })
  expect(await overflowX(page)).toBeLessThanOrEqual(0)
  expect(browser.problems).toEqual([])
})
