// A login session's token is refreshed before it expires (at 80 % of its life). The dashboard was
// keyed on the token, so each refresh threw the whole signed-in page away and built it again: the
// view went blank, every read was made again, and what the operator had typed (a command to run, a
// closure to set) was lost. The page stays as it is; only its event stream moves to the new token,
// resuming after the last event it had. Real Chromium, real API; the page's clock is moved on.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { addUser, call, enrollNode, heartbeatBody, PASSWORD } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { signInWithPassword } from "./support/dashboard.ts"
import { waitFor } from "./support/wait.ts"

let cp: TestControlPlane
let browser: TestBrowser

beforeAll(async () => {
  cp = await startInProcess({ trust: { jwtTtlSeconds: 60 } })
  browser = await launchBrowser()
})
afterAll(async () => {
  await browser?.close()
  await cp?.stop()
})

test("a session refreshed under an open node page keeps the page and what was typed; the stream takes the new token", async () => {
  await addUser(cp, "olga", "operator")
  const credential = await enrollNode(cp, "keep-1")
  expect((await call(cp, credential, "POST", "/api/agent/keep-1/heartbeat", heartbeatBody("keep-1"))).status).toBe(200)

  const page = await browser.page()
  await page.clock.install()
  const streams: string[] = []
  page.on("request", (r) => {
    if (new URL(r.url()).pathname === "/api/events/stream") streams.push(r.headers().authorization ?? "")
  })
  await signInWithPassword(page, cp.url, "olga", PASSWORD)
  await page.goto(`${cp.url}/#/nodes/keep-1`)
  await page.getByRole("heading", { name: "keep-1" }).waitFor()
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
  await page.getByLabel("Command", { exact: true }).fill("systemctl --failed")
  let removed = false
  await page.exposeFunction("headingGone", () => {
    removed = true
  })
  await page.evaluate(() => {
    const g = globalThis as unknown as {
      document: { body: object; getElementById(id: string): object | null }
      headingGone(): void
      MutationObserver: new (f: () => void) => { observe(n: object, o: object): void }
    }
    new g.MutationObserver(() => {
      if (!g.document.getElementById("node-title")) g.headingGone()
    }).observe(g.document.body, { childList: true, subtree: true })
  })

  const refreshed = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/refresh")
  await page.clock.fastForward(50_000)
  const res = await refreshed
  expect(res.status()).toBe(200)
  const { token } = (await res.json()) as { token: string }
  await page.waitForFunction(
    (want) =>
      (
        globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }
      ).document.querySelector("[data-testid=stream-state]")?.textContent === want,
    "Live",
  )
  await page.waitForTimeout(500)
  await waitFor(
    "a stream on the new token",
    async () => streams.at(-1),
    (a) => a === `Bearer ${token}`,
    10_000,
  )
  expect(await page.getByLabel("Command", { exact: true }).inputValue()).toBe("systemctl --failed")
  expect(removed).toBe(false)
  // Reads under way as the token was renewed were refused (the browser logs each 401) and made again
  // with the new token: no view says it could not load.
  expect(await page.locator(".banner.error").count()).toBe(0)
  expect(browser.problems.filter((p) => !p.includes("status of 401"))).toEqual([])
}, 60_000)
