// The web dashboard in real Chromium against a real control plane and real agents in test nodes:
// signing in, the fleet list, a node going drifted and back to healthy live (no reload) after a
// manual switch on the node, its page and actions, a deployment, what a viewer is offered, and the
// sign-in screen (never a blank page) when a token is wrong, revoked or expired. Screenshots go to
// docs/screenshots/.

import { Database } from "bun:sqlite"
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import { hashOf, type StorePath } from "../protocol/ids.ts"
import { type AgentProcess, startAgent } from "./support/agent-process.ts"
import { addUser, call, enrollNode, login, PASSWORD } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import {
  markPage,
  overflowX,
  pageStillMarked,
  signInWithPassword,
  signInWithToken,
  waitForRowStatus,
  waitForSignIn,
} from "./support/dashboard.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { leaveStoppedDeploy } from "./support/stopped-deploy.ts"
import { createTestNode, type TestNode } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

const SHOTS = join(import.meta.dir, "../docs/screenshots")
const PHONE = { width: 390, height: 844 }

let cp: TestControlPlane
let browser: TestBrowser
let gen1: StorePath
let gen2: StorePath
const nodes = new Map<string, TestNode>()
const agents = new Map<string, AgentProcess>()
let deploymentId: string

const nodeStatus = async (id: string) =>
  ((await (await cp.api(`/api/nodes/${id}`)).json()) as { status: string }).status

async function enrol(name: string, autoHeal: boolean) {
  const node = await createTestNode({ name, boot: gen1 })
  nodes.set(name, node)
  const jt = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
    token: string
  }
  const agent = startAgent(node, {
    nodeId: name,
    controlUrl: cp.url,
    joinToken: jt.token,
    extraArgs: autoHeal ? [] : ["--no-auto-heal"],
  })
  agents.set(name, agent)
  await waitFor(
    `${name} to enrol`,
    async () => (await cp.api(`/api/nodes/${name}`)).status,
    (s) => s === 200,
    30_000,
  )
  const put = await cp.api(`/api/nodes/${name}/desired`, { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
  expect(put.status).toBe(200)
  await waitFor(
    `${name} healthy`,
    () => nodeStatus(name),
    (s) => s === "healthy",
    30_000,
  )
  // A switch before the agent took gen1 as its desired closure would be undone by the activation.
  await waitFor(
    `${name}'s agent to acknowledge gen1`,
    async () => ((await (await cp.api(`/api/events?node=${name}`)).json()) as { events: { type: string }[] }).events,
    (es) => es.some((e) => e.type === "command.acked"),
    30_000,
  )
}

/** A deploy record as `chimera deploy` sends it to the control plane (POST /api/deployments/records). */
async function recordDeployment(): Promise<string> {
  const started = Date.now() - 5000
  const at = (ms: number) => new Date(started + ms).toISOString()
  const target = (name: string, status: "deployed" | "rolled-back", error: string | null) => ({
    target: name,
    status,
    before: { profile: gen1, current: gen1, booted: gen1 },
    copy: { missingPaths: 3, narBytes: 41_000 },
    previous: { generation: 1, path: gen1 },
    error,
    timings: [
      { phase: "plan" as const, startedAt: at(0), ms: 41 },
      { phase: "copy" as const, startedAt: at(41), ms: 380 },
      { phase: "activate" as const, startedAt: at(421), ms: 612 },
      { phase: "health" as const, startedAt: at(1033), ms: 95 },
      { phase: "confirm" as const, startedAt: at(1128), ms: 57 },
    ],
    startedAt: at(0),
    ms: 1185,
    log: [`copying 3 paths to ${name}`, "activating the new system", "<script>alert(1)</script> stays text"],
  })
  const record: DeploymentRecord = {
    id: "20261206020000-d45hb0ar",
    kind: "deploy",
    createdAt: at(0),
    finishedAt: at(1300),
    configPath: "/etc/chimera/web.nix",
    closure: gen2,
    hash: hashOf(gen2),
    isSystem: true,
    command: null,
    session: "chimera-deploy",
    status: "partial",
    targets: [target("web-1", "deployed", null), target("web-2", "rolled-back", "health check failed: exit 1")],
  }
  const res = await cp.api("/api/deployments/records", { method: "POST", body: JSON.stringify(record) })
  if (res.status !== 201) throw new Error(`recording the deployment: ${res.status} ${await res.text()}`)
  return record.id
}

beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1, { tag: "web" }), buildTestSystem(2, { tag: "web" })])
  cp = await startInProcess()
  await addUser(cp, "olga", "operator")
  await addUser(cp, "vic", "viewer")
  // web-1 reports drift without healing it, so the dashboard can be seen showing it; web-2 heals itself.
  await Promise.all([enrol("web-1", false), enrol("web-2", true)])
  deploymentId = await recordDeployment()
  browser = await launchBrowser()
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await Promise.all([...agents.values()].map((a) => a.stop()))
  await Promise.all([...nodes.values()].map((n) => n.stop()))
  await cp?.stop()
})

describe("web dashboard", () => {
  test("an operator watches a manual switch turn a node drifted, heals it from its page, and it turns healthy live", async () => {
    const page = await browser.page()
    await signInWithPassword(page, cp.url, "olga", PASSWORD)
    await page.getByTestId("count-all").filter({ hasText: "2" }).waitFor()
    await waitForRowStatus(page, "web-1", "healthy")
    await waitForRowStatus(page, "web-2", "healthy")
    await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
    await markPage(page)

    // Someone switches web-1 to generation 2 by hand; its agent (auto-heal off) reports the drift.
    await nodes.get("web-1")?.switchTo(gen2)
    await waitForRowStatus(page, "web-1", "drifted").catch(async (error) => {
      const events = await (await cp.api("/api/events?node=web-1")).text()
      const shown = await page.locator("main").textContent()
      throw new Error(
        `${error}\napi: ${await nodeStatus("web-1")}\nevents: ${events}\npage: ${shown}\nagent: ${agents.get("web-1")?.log().slice(-3000)}`,
      )
    })
    expect(await page.getByTestId("count-drifted").textContent()).toBe("1")
    await page.getByTestId("latest-events").getByText("drift.detected").first().waitFor()
    await page.getByRole("table", { name: "Nodes" }).getByText(hashOf(gen2).slice(0, 12)).nth(1).waitFor()
    await page.screenshot({ path: join(SHOTS, "overview.png") })

    await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "web-1", exact: true }).click()
    await page.getByRole("heading", { name: "web-1" }).waitFor()
    expect(await page.getByTestId("hash-desired").textContent()).toBe(hashOf(gen1))
    // The switch moves the profile first and /run/current-system a moment later: two drift reports.
    await page
      .getByTestId("hash-current")
      .filter({ hasText: hashOf(gen2) })
      .waitFor()
    await page.getByTestId("node-events").getByText("drift.detected").first().waitFor()
    await page.getByTestId("health-chart").locator("canvas").waitFor({ timeout: 30_000 })

    // Heal now asks first, then re-sends the desired closure, which the agent activates.
    await page.getByRole("button", { name: "Heal now" }).click()
    const dialog = page.getByRole("dialog", { name: "Heal now" })
    await dialog.waitFor()
    expect(await dialog.textContent()).toContain(gen1)
    await page.screenshot({ path: join(SHOTS, "confirm-heal.png") })
    await dialog.getByRole("button", { name: "Heal" }).click()
    await page.getByTestId("node-status").getByText("healthy").waitFor({ timeout: 30_000 })
    await page
      .getByTestId("hash-current")
      .filter({ hasText: hashOf(gen1) })
      .waitFor()
    await page.getByTestId("node-events").getByText("heal.succeeded").first().waitFor()
    expect((await nodes.get("web-1")?.links())?.current).toBe(gen1)

    // A command through the agent, with its confirmation and its output.
    await page.getByRole("textbox", { name: "Command" }).fill("echo hello-from-the-dashboard")
    await page.getByRole("button", { name: "Run", exact: true }).click()
    await page.getByRole("dialog", { name: "Run a command" }).getByRole("button", { name: "Run it" }).click()
    await page.getByTestId("run-output").getByText("hello-from-the-dashboard").waitFor({ timeout: 30_000 })
    await page.getByTestId("node-commands").getByText("echo hello-from-the-dashboard").waitFor()
    await page.screenshot({ path: join(SHOTS, "node.png"), fullPage: true })

    // Back on the fleet, without a reload since sign-in.
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: "Fleet" }).click()
    await waitForRowStatus(page, "web-1", "healthy")
    expect(await pageStillMarked(page)).toBe(true)
    expect(await nodeStatus("web-1")).toBe("healthy")
    expect(browser.problems).toEqual([])
  })

  test("deployments list and one deployment's targets, phases, timings and logs", async () => {
    const page = await browser.page()
    await signInWithPassword(page, cp.url, "olga", PASSWORD)
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: "Deployments" }).click()
    await page.getByRole("link", { name: deploymentId }).click()
    const web2 = page.getByRole("region", { name: "Target web-2" })
    await web2.waitFor()
    expect(await web2.textContent()).toContain("health check failed: exit 1")
    expect(await web2.getByRole("list", { name: "Phases" }).textContent()).toContain("activate 612 ms")
    // A log line that looks like markup is shown as text, not run.
    await page.getByText("<script>alert(1)</script> stays text").first().waitFor()
    expect(await page.locator(".target pre script").count()).toBe(0)
    await page.screenshot({ path: join(SHOTS, "deployment.png"), fullPage: true })
    expect(browser.problems).toEqual([])
  })

  test("a deploy whose control plane stopped shows as interrupted, with its targets' progress and why", async () => {
    // Its start and progress as a control plane that has since stopped left them, a minute ago.
    const id = await leaveStoppedDeploy(cp.dataDir, "web-1")
    const page = await browser.page()
    await signInWithPassword(page, cp.url, "olga", PASSWORD)
    await page.goto(`${cp.url}/#/deployments/${id}`)
    const target = page.getByRole("region", { name: "Target web-1" })
    await target.waitFor()
    expect(await target.textContent()).toContain("copy: copying")
    expect(await page.locator("header .badge").textContent()).toBe("interrupted")
    await page.getByRole("status").filter({ hasText: "stopped before it finished" }).waitFor()
    expect(browser.problems).toEqual([])
  })

  test("a viewer sees the fleet and a node but is offered no action and no command output", async () => {
    const page = await browser.page()
    await signInWithPassword(page, cp.url, "vic", PASSWORD)
    await waitForRowStatus(page, "web-2", "healthy")
    await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "web-2", exact: true }).click()
    await page.getByRole("heading", { name: "Closures" }).waitFor()
    await page.getByTestId("node-events").waitFor()
    expect(await page.getByTestId("node-actions").count()).toBe(0)
    expect(await page.getByRole("button", { name: "Heal now" }).count()).toBe(0)
    expect(await page.getByRole("button", { name: "Run" }).count()).toBe(0)
    expect(await page.getByRole("heading", { name: "Recent commands" }).count()).toBe(0)
    // The API agrees: the role may not act.
    const token = await login(cp, "vic")
    expect((await call(cp, token, "PUT", "/api/nodes/web-2/desired", { closure: gen1 })).status).toBe(403)
    expect(browser.problems).toEqual([])
  })

  test("on a phone-sized screen the fleet and a node page fit and stay usable", async () => {
    const page = await browser.page(PHONE)
    await signInWithPassword(page, cp.url, "olga", PASSWORD)
    await waitForRowStatus(page, "web-1", "healthy")
    expect(await overflowX(page)).toBeLessThanOrEqual(0)
    await page.screenshot({ path: join(SHOTS, "phone-overview.png") })
    // Keyboard only: Tab reaches the node link, Enter opens it.
    await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "web-1", exact: true }).focus()
    await page.keyboard.press("Enter")
    await page.getByRole("heading", { name: "Closures" }).waitFor()
    expect(await overflowX(page)).toBeLessThanOrEqual(0)
    expect(browser.problems).toEqual([])
  })

  test("a wrong, revoked or expired token brings the sign-in screen with the reason, never a blank page", async () => {
    // A wrong pasted token: refused at sign-in, with the API's reason.
    const page = await browser.page()
    await signInWithToken(page, cp.url, `chm_api_${"x".repeat(43)}`)
    await page.getByRole("alert").getByText("The token was refused").waitFor()

    // A valid API token, revoked while the dashboard is open: the event stream ends it at the next event.
    const created = (await (
      await cp.api("/api/tokens", { method: "POST", body: JSON.stringify({ name: "wall screen", role: "viewer" }) })
    ).json()) as { id: string; token: string }
    await signInWithToken(page, cp.url, created.token)
    await waitForRowStatus(page, "web-2", "healthy")
    await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
    expect((await cp.api(`/api/tokens/${created.id}`, { method: "DELETE" })).status).toBe(200)
    await cp.api("/api/nodes/web-2/desired", { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
    expect(await waitForSignIn(page)).toContain("Your session ended")

    // A login session revoked elsewhere: the next API call (opening deployments) gets 401.
    await signInWithPassword(page, cp.url, "vic", PASSWORD)
    const token = await login(cp, "vic")
    const { sessions } = (await (await call(cp, token, "GET", "/api/auth/sessions")).json()) as {
      sessions: { jti: string }[]
    }
    for (const s of sessions) await call(cp, token, "POST", "/api/auth/revoke", { jti: s.jti })
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: "Deployments" }).click()
    expect(await waitForSignIn(page)).toContain("Your session ended")
    expect(await page.locator("body").textContent()).not.toContain("    at ")
    await page.screenshot({ path: join(SHOTS, "session-ended.png") })

    // A session that expires: a control plane whose sessions last 3 s.
    await using short = await startInProcess({ trust: { jwtTtlSeconds: 3 } })
    await addUser(short, "ada", "viewer")
    await signInWithPassword(page, short.url, "ada", PASSWORD)
    expect(await waitForSignIn(page)).toContain("Your session ended")
    const pageErrors = browser.problems.filter((p) => p.startsWith("pageerror"))
    expect(pageErrors).toEqual([])
  }, 60_000)

  test("the overview and the events page start with the events from before sign-in, each once", async () => {
    const { events } = (await (await cp.api("/api/events?tail=true&limit=1")).json()) as { events: { id: number }[] }
    const before = events[0]?.id
    const page = await browser.page()
    await signInWithPassword(page, cp.url, "vic", PASSWORD)
    await page.getByTestId("latest-events").locator(`tr[data-event-id="${before}"]`).waitFor()
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: "Events" }).click()
    const rows = page.getByTestId("event-feed").locator("tr[data-event-id]")
    await page.getByTestId("event-feed").locator(`tr[data-event-id="${before}"]`).waitFor()
    await page.getByTestId("event-feed").getByText("node.enrolled").first().waitFor()
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute("data-event-id"))))
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids).toEqual([...ids].sort((a, b) => b - a))
    expect(browser.problems.filter((p) => p.startsWith("pageerror"))).toEqual([])
    // Each open page holds an event stream, and Chromium opens at most 6 connections to one host.
    await page.close()
  })

  test("a node's page shows its latest events, however many it has", async () => {
    // More than the page ever read (5,000, oldest first, before it asked for the tail).
    await enrollNode(cp, "web-3")
    const db = new Database(join(cp.dataDir, "chimera.db"))
    const at = new Date().toISOString()
    const insert = db.prepare(
      "INSERT INTO events (type, node_id, at, received_at, data) VALUES ('heal.failed', 'web-3', ?, ?, ?)",
    )
    db.transaction(() => {
      for (let attempt = 1; attempt <= 5_100; attempt++)
        insert.run(at, at, JSON.stringify({ attempt, error: "no space left on device" }))
    })()
    db.close()
    const page = await browser.page()
    await signInWithPassword(page, cp.url, "vic", PASSWORD)
    await waitForRowStatus(page, "web-2", "healthy")
    await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "web-3", exact: true }).click()
    const rows = page.getByTestId("node-events").locator("tbody tr")
    await rows.first().waitFor()
    expect(await rows.first().textContent()).toContain("attempt 5100: no space left on device")
    expect(await rows.count()).toBe(200)
    expect(browser.problems.filter((p) => p.startsWith("pageerror"))).toEqual([])
    await page.close()
  })
})
