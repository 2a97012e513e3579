// The incident API as an outsider meets it: a viewer reads incidents (filtered by status and node)
// and one incident with its timeline and deliveries; bad filters and ids get a 4xx that says what
// was expected; a node's own credential reads nothing; the answers hold no channel secret; an
// operator (not a viewer) closes one by hand, through the API or the CLI.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import { addUser, call, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type SlackFake, startSlack } from "./support/notify-servers.ts"
import { healFailed, type SimAgent, simAgent } from "./support/sim-agent.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

let slack: SlackFake
let cp: TestControlPlane
let viewer: string
let agent: SimAgent
let id: string

beforeAll(async () => {
  slack = startSlack()
  const config = loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl } })
  cp = await startInProcess({ notify: channelsFromConfig(config) })
  await addUser(cp, "vera", "viewer")
  viewer = await login(cp, "vera")
  agent = await simAgent(cp, "api-1")
  await (await simAgent(cp, "api-2")).report(healFailed())
  await agent.report(healFailed())
  const all = await waitFor(
    "two incidents, delivered",
    async () =>
      (await (await call(cp, viewer, "GET", "/api/incidents")).json()) as {
        incidents: { id: string; nodeId: string; undelivered: number }[]
      },
    (r) => r.incidents.length === 2 && r.incidents.every((i) => i.undelivered === 0),
  )
  id = all.incidents.find((i) => i.nodeId === "api-1")?.id ?? ""
})
afterAll(async () => {
  await cp?.stop()
  await slack?.stop()
})

describe("GET /api/incidents", () => {
  test("a viewer lists incidents, filtered by status and node", async () => {
    const byNode = (await (await call(cp, viewer, "GET", "/api/incidents?node=api-1")).json()) as {
      incidents: { nodeId: string; status: string }[]
    }
    expect(byNode.incidents.map((i) => i.nodeId)).toEqual(["api-1"])
    const resolved = (await (await call(cp, viewer, "GET", "/api/incidents?status=resolved")).json()) as {
      incidents: unknown[]
    }
    expect(resolved.incidents).toEqual([])
  })

  test("one incident comes with its timeline and deliveries, and no webhook secret", async () => {
    const res = await call(cp, viewer, "GET", `/api/incidents/${id}`)
    expect(res.status).toBe(200)
    const text = await res.text()
    const body = JSON.parse(text) as { timeline: { step: string }[]; deliveries: { channel: string; status: string }[] }
    expect(body.timeline.map((t) => t.step)).toEqual(["opened"])
    expect(body.deliveries).toMatchObject([{ channel: "slack", status: "delivered", attempts: 1 }])
    expect(text).not.toContain(new URL(slack.webhookUrl).pathname)
  })

  test("bad filters and ids are refused with what was expected", async () => {
    const status = await call(cp, viewer, "GET", "/api/incidents?status=closed")
    expect(status.status).toBe(422)
    expect(((await status.json()) as { error: string }).error).toContain('"open" or "resolved"')
    expect((await call(cp, viewer, "GET", "/api/incidents?limit=0")).status).toBe(422)
    expect((await call(cp, viewer, "GET", "/api/incidents?bogus=1")).status).toBe(422)
    const notUuid = await call(cp, viewer, "GET", "/api/incidents/..%2f..%2fetc")
    expect(notUuid.status).toBeGreaterThanOrEqual(400)
    expect(notUuid.status).toBeLessThan(500)
    const unknown = await call(cp, viewer, "GET", "/api/incidents/00000000-0000-4000-8000-000000000000")
    expect(unknown.status).toBe(404)
  })

  test("without a token, or with a node's credential, nothing is read", async () => {
    expect((await call(cp, null, "GET", "/api/incidents")).status).toBe(401)
    const asNode = await call(cp, agent.credential, "GET", "/api/incidents")
    expect(asNode.status).toBe(403)
  })
})

describe("POST /api/incidents/:id/resolve", () => {
  test("an operator closes an incident by hand: resolved with their name and note, and Slack hears of it", async () => {
    await addUser(cp, "otto", "operator")
    const operator = await login(cp, "otto")
    const listed = (await (await call(cp, viewer, "GET", "/api/incidents?node=api-2")).json()) as {
      incidents: { id: string }[]
    }
    const other = listed.incidents[0]?.id as string
    const path = `/api/incidents/${other}/resolve`
    const refused = await call(cp, viewer, "POST", path, {})
    expect(refused.status).toBe(403)
    expect(((await refused.json()) as { error: string }).error).toContain("fleet:deploy")
    for (const bad of [{ note: 5 }, { note: "  " }, { reason: "x" }])
      expect((await call(cp, operator, "POST", path, bad)).status).toBe(422)
    const sentBefore = slack.messages().length

    // The CLI, as an operator types it: the id's first characters are enough when only one has them.
    const chimera = (args: string[]) =>
      run([process.execPath, MAIN, "incidents", ...args], {
        env: { CHIMERA_URL: cp.url, CHIMERA_TOKEN: operator, NO_COLOR: "1" },
      })
    const all = (await (await call(cp, viewer, "GET", "/api/incidents")).json()) as { incidents: { id: string }[] }
    const nobody = ["0000", "ffff", "aaaa"].find((p) => !all.incidents.some((i) => i.id.startsWith(p))) as string
    expect(await chimera(["show", nobody])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(`no incident's id starts with ${nobody}`),
    })
    const cli = await chimera(["resolve", other.slice(0, 8), "--note", "api-2 rebuilt by hand"])
    expect({ code: cli.code, err: cli.stderr }).toEqual({ code: 0, err: "" })
    expect(cli.stdout).toBe(`${other} resolved: resolved by otto: api-2 rebuilt by hand\n`)
    const detail = (await (await call(cp, viewer, "GET", `/api/incidents/${other}`)).json()) as {
      incident: { status: string; resolvedAt: string | null }
      timeline: { step: string; message: string }[]
    }
    expect(detail.incident.status).toBe("resolved")
    expect(detail.timeline.map((t) => [t.step, t.message]).at(-1)).toEqual([
      "resolved",
      "resolved by otto: api-2 rebuilt by hand",
    ])
    await waitFor(
      "Slack told of the resolution",
      async () => slack.messages().slice(sentBefore),
      (m) => JSON.stringify(m).includes("rebuilt by hand"),
    )

    // Once is enough: a second resolve says when and why it was resolved; an unknown id is a 404.
    const again = await call(cp, operator, "POST", path, {})
    expect(again.status).toBe(409)
    expect(((await again.json()) as { error: string }).error).toContain("resolved already")
    const unknown = await call(cp, operator, "POST", "/api/incidents/00000000-0000-4000-8000-000000000000/resolve", {})
    expect(unknown.status).toBe(404)
    // The other node's incident stands.
    const open = (await (await call(cp, viewer, "GET", "/api/incidents?status=open")).json()) as {
      incidents: { nodeId: string }[]
    }
    expect(open.incidents.map((i) => i.nodeId)).toEqual(["api-1"])
  })

  test("the audit log files a resolve, and refusals of it, under the incident's node, never under its id", async () => {
    const { incidents } = (await (await call(cp, viewer, "GET", "/api/incidents?node=api-1")).json()) as {
      incidents: { id: string }[]
    }
    const path = `/api/incidents/${incidents[0]?.id}/resolve`
    // A node's credential at the door (the first such refusal: its own row).
    expect((await call(cp, agent.credential, "POST", path, {})).status).toBe(403)
    expect((await call(cp, cp.adminToken, "POST", path, { note: "audited" })).status).toBe(200)
    const { entries } = (await (
      await cp.api(`/api/audit?action=${encodeURIComponent("POST /api/incidents/:id/resolve")}`)
    ).json()) as {
      entries: { path: string; nodeId: string | null; status: number }[]
    }
    expect(entries.filter((e) => e.path === path).map((e) => [e.status, e.nodeId])).toEqual([
      [403, null],
      [200, "api-1"],
    ])
  })
})
