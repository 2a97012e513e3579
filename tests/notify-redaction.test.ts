// What an incident tells Slack, PagerDuty, email and ticket systems passes the same secret net as the
// API's answers: a node's failed heal whose error quotes a password, an API token and a URL with
// credentials (Nix prints the URLs it fetches) opens an incident whose notice carries them redacted.
// The people in a Slack channel or on a mailing list are a wider audience than the viewers of the
// fleet, and their copies cannot be taken back.
import { expect, test } from "bun:test"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import { startInProcess } from "./support/control-plane.ts"
import { startSlack } from "./support/notify-servers.ts"
import { healFailed, simAgent } from "./support/sim-agent.ts"
import { waitFor } from "./support/wait.ts"

const API_TOKEN = `chm_api_${"B".repeat(43)}`
const SECRETS = ["hunter2hunter2", API_TOKEN, "cachepass99"]

test("a failed heal quoting secrets reaches Slack redacted, as GET /api/incidents shows it", async () => {
  const fake = startSlack()
  await using slack = Object.assign(fake, { [Symbol.asyncDispose]: () => fake.stop() })
  const config = loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl } })
  await using cp = await startInProcess({ notify: channelsFromConfig(config) })
  const agent = await simAgent(cp, "db-7")
  await agent.report(
    healFailed(
      `activation hook: PGPASSWORD=hunter2hunter2 psql; ${API_TOKEN}; unable to download 'https://ci:cachepass99@cache.example.org/nix-cache-info'`,
    ),
  )
  const [message] = await waitFor(
    "the incident's Slack message",
    async () => slack.messages(),
    (m) => m.length > 0,
  )
  const sent = JSON.stringify(message)
  for (const secret of SECRETS) expect(sent).not.toContain(secret)
  expect(sent).toContain("PGPASSWORD=[redacted]")
  expect(sent).toContain("https://ci:[redacted]@cache.example.org/nix-cache-info")

  const answer = await (await cp.api("/api/incidents?node=db-7")).text()
  for (const secret of SECRETS) expect(answer).not.toContain(secret)
})
