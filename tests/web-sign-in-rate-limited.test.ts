// Signing in with an API token while the token is over its rate limit: the page says what the API
// says (try again in so many seconds), not the bare code RATE_LIMIT_EXCEEDED, as the password
// sign-in and every other request of the page already do.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { call } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { LIFTED_LIMITS, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { signInWithToken } from "./support/dashboard.ts"

let cp: TestControlPlane
let browser: TestBrowser

beforeAll(async () => {
  cp = await startInProcess({ trust: { rateLimits: { ...LIFTED_LIMITS, api: { limit: 3, windowMs: 60_000 } } } })
  browser = await launchBrowser()
})
afterAll(async () => {
  await browser?.close()
  await cp?.stop()
})

test("a rate-limited token sign-in says when to try again", async () => {
  // Spend the token's requests for this window.
  for (let i = 0; i < 10; i++) await call(cp, cp.adminToken, "GET", "/api/auth/me")
  const spent = await call(cp, cp.adminToken, "GET", "/api/auth/me")
  expect(spent.status).toBe(429)
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  const banner = page.locator(".signin .banner.error")
  await banner.waitFor()
  const text = (await banner.textContent()) ?? ""
  expect(text).toMatch(/Try again in \d+ seconds/)
  expect(text).not.toBe("RATE_LIMIT_EXCEEDED")
  await page.close()
}, 60_000)
