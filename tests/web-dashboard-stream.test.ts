// The dashboard's live stream survives a control plane restart without losing events: the page
// reconnects with Last-Event-ID, and events stored while it was away are replayed into the feed and
// the node list. Reconnection is held off (the browser's stream requests are refused) until the
// events exist, so what reaches the page is the replay, not the live tail.
import { afterAll, beforeAll, expect, test } from "bun:test"
import type { Page } from "playwright-core"
import { call, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { freePort, type SpawnedControlPlane, spawnControlPlane } from "./support/control-plane.ts"
import { signInWithToken, waitForRowStatus } from "./support/dashboard.ts"

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/wi6rh8nbq7wb5jnhzccqkkk341v4h5k2-chimera-test-system-2"

let cp: SpawnedControlPlane
let browser: TestBrowser

beforeAll(async () => {
  cp = await spawnControlPlane(freePort())
  browser = await launchBrowser()
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await cp?.stop()
})

async function enrol(nodeId: string): Promise<string> {
  const jt = (await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId })).json()) as {
    token: string
  }
  const res = await call(cp, jt.token, "POST", "/api/agent/enroll", { nodeId, hostname: nodeId, agentVersion: "t" })
  expect(res.status).toBe(201)
  return ((await res.json()) as { credential: string }).credential
}

test("after a control plane restart the page resumes with Last-Event-ID and shows the events it missed", async () => {
  const credential = await enrol("db-1")
  expect((await call(cp, cp.adminToken, "PUT", "/api/nodes/db-1/desired", { closure: GEN1 })).status).toBe(200)
  const beat = { ...heartbeatBody("db-1"), heartbeatIntervalSeconds: 600 }
  expect((await call(cp, credential, "POST", "/api/agent/db-1/heartbeat", beat)).status).toBe(200)

  const page = await browser.page()
  const resumedWith: (string | undefined)[] = []
  page.on("request", (r) => {
    if (r.url().endsWith("/api/events/stream")) resumedWith.push(r.headers()["last-event-id"])
  })
  await signInWithToken(page, cp.url, cp.adminToken)
  await waitForRowStatus(page, "db-1", "healthy")
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
  const lastSeen = (await (await cp.api("/api/events?limit=1000")).json()) as { events: { id: number }[] }
  const lastId = lastSeen.events.at(-1)?.id ?? 0

  // The stream is cut (SIGKILL) and kept from reconnecting until the control plane has new events.
  await page.route("**/api/events/stream", (route) => route.abort())
  await cp.kill()
  await page.getByTestId("stream-state").filter({ hasText: "Reconnecting" }).waitFor()
  await cp.restart()
  const report = {
    reports: [
      {
        seq: 1,
        at: new Date().toISOString(),
        type: "drift.detected",
        data: { kinds: ["runtime-drift"], desired: GEN1, system: { profile: GEN1, current: GEN2, booted: GEN1 } },
      },
      { seq: 2, at: new Date().toISOString(), type: "heal.started", data: { desired: GEN1, attempt: 1 } },
      {
        seq: 3,
        at: new Date().toISOString(),
        type: "heal.failed",
        data: { desired: GEN1, attempt: 1, durationMs: 12, error: "switch failed", output: "", retryInMs: null },
      },
    ],
  }
  expect((await call(cp, credential, "POST", "/api/agent/db-1/reports", report)).status).toBe(200)
  await page.unroute("**/api/events/stream")

  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor({ timeout: 60_000 })
  const feed = page.getByTestId("latest-events")
  for (const type of ["drift.detected", "heal.started", "heal.failed"]) await feed.getByText(type).waitFor()
  await waitForRowStatus(page, "db-1", "heal-failed")
  expect(resumedWith.at(-1)).toBe(String(lastId))
  expect(browser.problems.filter((p) => p.startsWith("pageerror"))).toEqual([])
  await page.close()
})

/** Makes the page believe it was put in the background (or brought back), as a switch of tabs does. */
const setHidden = (page: Page, hidden: boolean) =>
  page.evaluate(`(() => {
    Object.defineProperty(document, "hidden", { value: ${hidden}, configurable: true })
    Object.defineProperty(document, "visibilityState", { value: "${hidden ? "hidden" : "visible"}", configurable: true })
    document.dispatchEvent(new Event("visibilitychange"))
  })()`)

test("tabs left in the background let their streams go, so one more tab still loads; shown again, a tab catches up", async () => {
  await enrol("tab-1")
  // Six tabs, each with its stream: as many connections as Chromium opens to one host.
  const tabs: Page[] = []
  for (let i = 0; i < 6; i++) {
    const tab = await browser.page()
    await signInWithToken(tab, cp.url, cp.adminToken)
    await tab.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
    tabs.push(tab)
  }
  for (const tab of tabs) await setHidden(tab, true)
  for (const tab of tabs) await tab.getByTestId("stream-state").filter({ hasText: "Reconnecting" }).waitFor()

  // A seventh tab reads the fleet and gets a stream of its own.
  const seventh = await browser.page()
  await signInWithToken(seventh, cp.url, cp.adminToken)
  await seventh.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "tab-1", exact: true }).waitFor()
  await seventh.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()

  // An event while the first tab is hidden reaches it when it is shown: it resumes after its last one.
  const set = await call(cp, cp.adminToken, "PUT", "/api/nodes/tab-1/desired", { closure: GEN2 })
  expect(set.status).toBe(200)
  const { events } = (await (await cp.api("/api/events?tail=true&limit=1")).json()) as { events: { id: number }[] }
  await seventh.getByTestId("latest-events").locator(`tr[data-event-id="${events[0]?.id}"]`).waitFor()
  await seventh.close()
  const first = tabs[0] as Page
  await setHidden(first, false)
  await first.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
  await first.getByTestId("latest-events").locator(`tr[data-event-id="${events[0]?.id}"]`).waitFor()
  for (const tab of tabs) await tab.close()
  expect(browser.problems.filter((p) => p.startsWith("pageerror"))).toEqual([])
}, 60_000)

/** The page's visibilitychange listeners on document, as DevTools lists them. */
async function visibilityListeners(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page)
  try {
    const { result } = await cdp.send("Runtime.evaluate", { expression: "document" })
    const { listeners } = await cdp.send("DOMDebugger.getEventListeners", { objectId: result.objectId ?? "" })
    return listeners.filter((l) => l.type === "visibilitychange").length
  } finally {
    await cdp.detach()
  }
}

test("a stream stopped while its hidden tab has let it go (signing out) stops then, not when the tab is shown", async () => {
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
  await setHidden(page, true)
  await page.getByTestId("stream-state").filter({ hasText: "Reconnecting" }).waitFor()
  await page.getByRole("button", { name: "Sign out" }).click()
  await page.getByRole("button", { name: "Sign in" }).waitFor()
  // Nothing is left waiting for the tab to be shown: each sign-in (and each refresh of a login
  // session, which starts the page's stream anew) would otherwise leave one behind.
  expect(await visibilityListeners(page)).toBe(0)
  await page.close()
}, 60_000)

// A read of the fleet that failed while the control plane was away left "Could not load the fleet:
// the control plane cannot be reached" on screen beside a stream back to "Live", and load, memory
// and "last heartbeat" (not events) as they were, until the next periodic read 15 s on. The fleet is
// read again as soon as the stream is back.
test("when the stream is back after an outage the fleet is read again at once and the outage's error goes", async () => {
  const credential = await enrol("back-1")
  const beat = (load: number) =>
    call(cp, credential, "POST", "/api/agent/back-1/heartbeat", { ...heartbeatBody("back-1"), load: [load, 0, 0] })
  expect((await beat(1.25)).status).toBe(200)
  const page = await browser.page()
  await page.clock.install()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
  const row = page
    .getByRole("table", { name: "Nodes" })
    .getByRole("row")
    .filter({ has: page.getByRole("link", { name: "back-1", exact: true }) })
  await row.getByText("1.25").waitFor()

  // The control plane goes away: the stream drops, and the periodic read fails.
  await cp.kill()
  await page.getByTestId("stream-state").filter({ hasText: "Reconnecting" }).waitFor()
  await page.clock.fastForward(16_000)
  await page.getByText("Could not load the fleet").waitFor()
  await cp.restart()
  expect((await beat(3.5)).status).toBe(200)
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor({ timeout: 30_000 })
  // Well before the next periodic read (15 s of the page's clock, which runs at its own pace now).
  await row.getByText("3.50").waitFor({ timeout: 5_000 })
  expect(await page.getByText("Could not load the fleet").count()).toBe(0)
  await page.close()
}, 60_000)

// The page's first connection is not a reconnection: it said "Reconnecting…" before it was ever live.
test("the stream's first connection says Connecting, and only a lost one Reconnecting", async () => {
  const page = await browser.page()
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  await page.route("**/api/events/stream", async (route) => {
    await held
    await route.continue()
  })
  await signInWithToken(page, cp.url, cp.adminToken)
  const state = page.getByTestId("stream-state")
  await state.filter({ hasText: "Connecting…" }).waitFor()
  expect(await state.textContent()).toBe("Connecting…")
  release()
  await state.filter({ hasText: "Live" }).waitFor()
  await page.unroute("**/api/events/stream")
  await page.close()
}, 60_000)

// A silent node's page showed its last load, memory and agent phase as if they were current.
test("an unreachable node's page says its health figures and phase are as last reported", async () => {
  const credential = await enrol("quiet-1")
  const beat = { ...heartbeatBody("quiet-1"), heartbeatIntervalSeconds: 0.5, load: [2.5, 0, 0] }
  expect((await call(cp, credential, "POST", "/api/agent/quiet-1/heartbeat", beat)).status).toBe(200)
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.goto(`${cp.url}/#/nodes/quiet-1`)
  await page.getByText("2.50").waitFor()
  await page.getByTestId("node-status").filter({ hasText: "unreachable" }).waitFor({ timeout: 20_000 })
  const stale = page.getByTestId("health-stale")
  await stale.waitFor()
  expect(await stale.textContent()).toContain("the node has not been heard from since")
  expect(await page.locator(".node-head .meta").textContent()).toContain("(last reported)")
  await page.close()
}, 60_000)
