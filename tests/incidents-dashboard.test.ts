// The web dashboard in real Chromium shows a node's incidents with the ticket id the ITSM tool (a local
// Jira that checks REST v3) gave them, and follows the incident live as the node recovers.
import { expect, test } from "bun:test"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import type { Incident } from "../control/domain/incident-model.ts"
import { launchBrowser } from "./support/browser.ts"
import { startInProcess } from "./support/control-plane.ts"
import { signInWithToken } from "./support/dashboard.ts"
import { startJira } from "./support/jira-server.ts"
import { healFailed, healSucceeded, simAgent } from "./support/sim-agent.ts"
import { waitFor } from "./support/wait.ts"

test("a node's page lists its incident with the Jira key, and shows it resolved when the node heals", async () => {
  await using jira = startJira()
  const config = loadConfig({
    env: {
      CHIMERA_ITSM_PROVIDER: "jira",
      CHIMERA_ITSM_URL: jira.url,
      CHIMERA_ITSM_USERNAME: jira.email,
      CHIMERA_ITSM_API_KEY: jira.token,
      CHIMERA_ITSM_PROJECT_KEY: jira.project,
    },
  })
  await using cp = await startInProcess({ notify: channelsFromConfig(config) })
  const node = await simAgent(cp, "dash-inc")
  await node.heartbeat()
  await node.report(healFailed())
  const [incident] = await waitFor(
    "the incident's Jira ticket",
    async () => ((await (await cp.api("/api/incidents")).json()) as { incidents: Incident[] }).incidents,
    (is) => is[0]?.ticketId !== null && is[0]?.ticketId !== undefined,
  )
  const key = [...jira.issues.values()][0]?.key ?? ""
  expect(incident?.ticketLabel ?? incident?.ticketId).toBe(key)

  await using browser = await launchBrowser()
  const page = await browser.page()
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/dash-inc`)
  const row = page.locator(`[data-incident-id="${incident?.id}"]`)
  await row.waitFor({ timeout: 30_000 })
  expect(await row.locator('[data-testid="incident-ticket"]').textContent()).toBe(key)
  expect(await row.locator("td").first().textContent()).toBe("open")

  await node.report(healSucceeded())
  await waitFor(
    "the page to show the incident resolved",
    async () => row.locator("td").first().textContent(),
    (t) => t === "resolved",
    30_000,
  )
  expect(browser.problems).toEqual([])
}, 120_000)
