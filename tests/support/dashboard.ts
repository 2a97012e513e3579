// What the web dashboard's browser tests share: signing in through the page, and waiting on what the
// page shows (a node's status badge, the sign-in screen) by polling the DOM, never by sleeping.
import type { Page } from "playwright-core"

type El = {
  textContent: string | null
  closest(selector: string): El | null
  querySelector(selector: string): El | null
}
/** The page's globals, typed just enough for these checks (the test program has no DOM library). */
export interface PageGlobals {
  document: { querySelectorAll(selector: string): Iterable<El>; documentElement: { scrollWidth: number } }
  innerWidth: number
  chimeraMark?: number
}

export async function signInWithPassword(page: Page, url: string, username: string, password: string) {
  await page.goto(url)
  await page.getByLabel("Username", { exact: true }).fill(username)
  await page.getByLabel("Password", { exact: true }).fill(password)
  await page.getByRole("button", { name: "Sign in" }).click()
  await page.getByRole("navigation", { name: "Views" }).waitFor()
}

export async function signInWithToken(page: Page, url: string, token: string) {
  await page.goto(url)
  await page.getByLabel("API token", { exact: true }).check()
  await page.locator("#token").fill(token)
  await page.getByRole("button", { name: "Sign in" }).click()
}

/** The status badge text of `nodeId`'s row in the fleet list (null while the row is not rendered). */
export function rowStatus(page: Page, nodeId: string): Promise<string | null> {
  return page.evaluate((id) => {
    const { document } = globalThis as unknown as PageGlobals
    for (const a of document.querySelectorAll("table.grid td.name a")) {
      if (a.textContent === id) return a.closest("tr")?.querySelector(".badge")?.textContent ?? null
    }
    return null
  }, nodeId)
}

export async function waitForRowStatus(page: Page, nodeId: string, status: string, timeout = 30_000) {
  await page.waitForFunction(
    ([id, want]) => {
      const { document } = globalThis as unknown as PageGlobals
      for (const a of document.querySelectorAll("table.grid td.name a"))
        if (a.textContent === id) return a.closest("tr")?.querySelector(".badge")?.textContent === want
      return false
    },
    [nodeId, status] as const,
    { timeout, polling: 50 },
  )
}

/** Waits for the sign-in form, and returns the reason it shows (if any). */
export async function waitForSignIn(page: Page, timeout = 30_000): Promise<string> {
  await page.getByRole("heading", { name: "Sign in to Chimera" }).waitFor({ timeout })
  const banner = page.locator(".signin .banner")
  return (await banner.count()) > 0 ? ((await banner.first().textContent()) ?? "") : ""
}

/** Marks the page's JavaScript world; a reload or navigation would lose the mark. */
export const markPage = (page: Page) =>
  page.evaluate(() => {
    ;(globalThis as unknown as PageGlobals).chimeraMark = 42
  })
export const pageStillMarked = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as PageGlobals).chimeraMark === 42)

/** How far the page is wider than the viewport (0 or less: no sideways scrolling). */
export const overflowX = (page: Page) =>
  page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals
    return g.document.documentElement.scrollWidth - g.innerWidth
  })
