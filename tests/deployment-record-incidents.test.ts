// Incidents from deployment records (POST /api/deployments/records), which are a caller's word: a
// record opens incidents only on this control plane's nodes ([fleet.nodes] names and enrolled nodes),
// never on names it invents, and resolves only incidents its own principal's records opened, never
// one a deploy the control plane ran opened. A real control plane with a Slack webhook behind it; the
// control plane's own deploys go to an enrolled node through its agent, whose heartbeats the test
// sends. On SQLite and on PostgreSQL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import { loadConfig } from "../control/config.ts"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import type { Incident } from "../control/domain/incident-model.ts"
import type { StorePath } from "../protocol/ids.ts"
import { addUser, call, enrollNode, heartbeatBody, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { cliRecord, type ReportedTarget } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { type SlackFake, startSlack } from "./support/notify-servers.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { waitFor } from "./support/wait.ts"

const PHISHING = "URGENT: your Chimera session expired, sign in again at https://chimera-sso.example.net"

let closure: StorePath
let pg: TestPostgres
let records = 0

beforeAll(async () => {
  ;[closure, pg] = await Promise.all([buildTestSystem(1, { tag: "record-incidents" }), startPostgres()])
}, 120_000)
afterAll(() => pg?.stop())

/** A record as `chimera deploy` reports it after running the deploy over SSH itself. */
/** A new record of the CLI's, of a deploy of `closure` that ended on each target as given. */
const record = (targets: ReportedTarget[]): DeploymentRecord =>
  cliRecord(`20261207${String(++records).padStart(6, "0")}-0dec0de0`, closure, targets)

for (const dialect of ["sqlite", "postgres"] as const) {
  describe(`incidents from deployment records (${dialect})`, () => {
    let slack: SlackFake
    let cp: TestControlPlane
    let operator: string
    beforeAll(async () => {
      slack = startSlack()
      const config = loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl } })
      // Named nodes the control plane would reach over SSH; nothing here dials them.
      const named = ["web-1", "web-2"].map((name) => ({ name, address: `root@${name}.invalid`, tags: [] }))
      cp = await startInProcess({
        ...(dialect === "postgres" ? { databaseUrl: await pg.database("record_incidents") } : {}),
        notify: channelsFromConfig(config),
        commandTargets: commandTargets(
          { nodes: named, targets: [] },
          { knownHosts: join(tmpdir(), "chimera-record-incidents-known-hosts") },
        ),
      })
      await addUser(cp, "olga", "operator")
      operator = await login(cp, "olga")
    })
    afterAll(async () => {
      await cp?.stop()
      await slack?.stop()
    })

    async function report(token: string, record: DeploymentRecord) {
      const res = await call(cp, token, "POST", "/api/deployments/records", record)
      expect(res.status).toBe(201)
    }

    const incidents = async (query = "") =>
      ((await (await cp.api(`/api/incidents${query}`)).json()) as { incidents: (Incident & { delivered: number })[] })
        .incidents

    const openOn = async (node: string) => (await incidents(`?status=open&node=${node}`))[0]

    test("invented targets raise no incident and post nothing; a named node's failure opens one its reporter resolves", async () => {
      const invented = Array.from({ length: 25 }, (_, i) => ({
        target: `payroll-${i}.corp.example`,
        status: "failed" as const,
        error: PHISHING,
      }))
      await report(operator, record(invented))
      // Events are handled in order: once this record's incident is told, the one before was handled.
      await report(operator, record([{ target: "web-1", status: "rolled-back", error: "health check failed" }]))
      const opened = await waitFor(
        "web-1's incident, posted to Slack",
        () => openOn("web-1"),
        (i) => i?.delivered === 1,
      )
      expect((await incidents()).map((i) => i.nodeId)).toEqual(["web-1"])
      expect(slack.messages()).toHaveLength(1)
      expect(JSON.stringify(slack.messages())).not.toContain("chimera-sso")
      // Whoever reads the notice knows it is the reporter's word, not the control plane's.
      expect(opened?.message).toContain("reported deployment")

      await report(operator, record([{ target: "web-1", status: "deployed" }]))
      await waitFor(
        "web-1's incident resolved by its reporter's next record",
        () => openOn("web-1"),
        (i) => i === undefined,
      )
    })

    test("a record cannot resolve the incident a deploy the control plane ran opened; its next deploy does", async () => {
      const credential = await enrollNode(cp, "pull-1")
      const heartbeat = async (extra: Record<string, unknown>) => {
        const res = await call(cp, credential, "POST", "/api/agent/pull-1/heartbeat", {
          ...heartbeatBody("pull-1"),
          ...extra,
        })
        expect(res.ok).toBe(true)
      }
      const deploy = async () => {
        const res = await cp.api("/api/deployments", {
          method: "POST",
          body: JSON.stringify({ targets: ["pull-1"], closure }),
        })
        expect(res.status).toBe(202)
      }
      // The agent takes the new closure and reports that it cannot activate it.
      await heartbeat({ desired: closure, phase: "heal-failed" })
      await deploy()
      const real = await waitFor(
        "the control plane's deploy-failed incident on pull-1",
        () => openOn("pull-1"),
        (i) => i?.problem === "deploy-failed",
        30_000,
      )

      // Neither the operator nor the admin can talk it away, or rewrite it, with a record of their own.
      for (const token of [operator, cp.adminToken])
        await report(token, record([{ target: "pull-1", status: "deployed" }]))
      await report(operator, record([{ target: "pull-1", status: "failed", error: PHISHING }]))
      await report(operator, record([{ target: "web-2", status: "failed" }]))
      await waitFor(
        "the marker incident on web-2",
        () => openOn("web-2"),
        (i) => i !== undefined,
      )
      const still = await openOn("pull-1")
      expect(still).toMatchObject({ id: real?.id, status: "open", occurrences: 1, message: real?.message })
      const detail = (await (await cp.api(`/api/incidents/${real?.id}`)).json()) as { timeline: { step: string }[] }
      expect(detail.timeline.map((t) => t.step)).toEqual(["opened"])

      // The agent now runs the closure: the control plane's own deploy finds it there and resolves it.
      await heartbeat({
        desired: closure,
        phase: "congruent",
        system: { profile: closure, current: closure, booted: closure },
      })
      await deploy()
      await waitFor(
        "pull-1's incident resolved by the control plane's deploy",
        () => openOn("pull-1"),
        (i) => i === undefined,
        30_000,
      )
    })
  })
}
