// A node whose credential was revoked is shown as revoked on the web dashboard, in the fleet list and
// on its own page, not as the status its last heartbeat left (healthy until it goes unreachable).
// Real Chromium, real API.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { signInWithToken } from "./support/dashboard.ts"

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

test("a revoked node shows as revoked in the fleet list and on its page", async () => {
  for (const id of ["kept-1", "gone-1"]) {
    const credential = await enrollNode(cp, id)
    expect((await call(cp, credential, "POST", `/api/agent/${id}/heartbeat`, heartbeatBody(id))).status).toBe(200)
  }
  expect((await call(cp, cp.adminToken, "POST", "/api/nodes/gone-1/revoke")).status).toBe(200)

  const page = await browser.page()
  try {
    await signInWithToken(page, cp.url, cp.adminToken)
    const row = (id: string) => page.getByRole("row").filter({ has: page.getByRole("link", { name: id, exact: true }) })
    await row("gone-1").getByText("revoked", { exact: true }).waitFor()
    expect(await row("kept-1").getByText("revoked", { exact: true }).count()).toBe(0)
    await page.goto(`${cp.url}/#/nodes/gone-1`)
    await page.getByTestId("node-status").getByText("revoked", { exact: true }).waitFor()
    expect(browser.problems).toEqual([])
  } finally {
    await page.close()
  }
})
