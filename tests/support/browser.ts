// Real Chromium for the web dashboard's tests and benchmark: Debian's /usr/bin/chromium driven by
// playwright-core, headless, with a fresh profile (user-data-dir) that is deleted afterwards, and
// none of the browser's own background traffic. Pages that log errors or fail to load a script are
// recorded, so a test can assert that the dashboard never threw.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { requireTool } from "./tools.ts"

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
]

export interface TestBrowser extends AsyncDisposable {
  context: BrowserContext
  /** A new tab; its console errors and page errors are collected in `problems`. */
  page(viewport?: { width: number; height: number }): Promise<Page>
  /** Console errors and uncaught exceptions of every page so far. */
  problems: string[]
  close(): Promise<void>
}

export async function launchBrowser(opts: { colorScheme?: "light" | "dark" } = {}): Promise<TestBrowser> {
  const executablePath = requireTool("chromium")
  const userDataDir = await mkdtemp(join(tmpdir(), "chimera-chromium-"))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    colorScheme: opts.colorScheme ?? "light",
    viewport: { width: 1280, height: 800 },
  })
  const problems: string[] = []
  const close = async () => {
    await context.close()
    await rm(userDataDir, { recursive: true, force: true })
  }
  return {
    context,
    problems,
    async page(viewport) {
      const page = await context.newPage()
      if (viewport) await page.setViewportSize(viewport)
      page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`))
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`)
      })
      return page
    },
    close,
    [Symbol.asyncDispose]: close,
  }
}
