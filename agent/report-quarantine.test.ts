// A report the control plane refuses for good must not block the ones behind it. A real agent in a
// test node talks to a real control plane through a thin proxy that stands in for a control plane
// refusing one kind of report (as an older control plane refuses a report type it does not know, or
// a proxy with a smaller body limit does): it reads each batch with the wire's own schema and answers
// 422, in the control plane's error shape, to any batch holding a heal.failed; everything else passes
// through untouched. The agent must set that report aside on disk with the answer, say so in its log
// and in a report.quarantined event, and deliver every other report.
import { beforeAll, describe, expect, test } from "bun:test"
import { readdir } from "node:fs/promises"
import { join } from "node:path"
import { ReportBatch } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "../tests/support/agent-process.ts"
import { startInProcess, type TestControlPlane } from "../tests/support/control-plane.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode } from "../tests/support/test-node.ts"
import { waitFor } from "../tests/support/wait.ts"

let gen1: StorePath
let gen2: StorePath
let broken: StorePath

beforeAll(async () => {
  ;[gen1, gen2, broken] = await Promise.all([
    buildTestSystem(1, { tag: "quarantine" }),
    buildTestSystem(2, { tag: "quarantine" }),
    buildTestSystem(3, { tag: "quarantine", failSwitch: true }),
  ])
})

/** Forwards to `cp`, except report batches holding a heal.failed: 422, as the control plane words it. */
function refusingProxy(cp: TestControlPlane) {
  let refused = 0
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 60,
    async fetch(req) {
      const url = new URL(req.url)
      const body = req.method === "GET" ? undefined : await req.arrayBuffer()
      if (url.pathname.endsWith("/reports") && body) {
        const batch = ReportBatch.parse(JSON.parse(new TextDecoder().decode(body)))
        if (batch.reports.some((r) => r.type === "heal.failed")) {
          refused++
          return Response.json(
            { error: "reports.3.type: unknown report type heal.failed", code: "VALIDATION_FAILED" },
            { status: 422 },
          )
        }
      }
      const headers = new Headers(req.headers)
      headers.delete("host")
      return fetch(`${cp.url}${url.pathname}${url.search}`, { method: req.method, headers, body })
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, refused: () => refused, stop: () => server.stop(true) }
}

type Event = { id: number; type: string; data: Record<string, unknown> }
const events = async (cp: TestControlPlane, id: string): Promise<Event[]> =>
  ((await (await cp.api(`/api/events?node=${id}&limit=1000`)).json()) as { events: Event[] }).events

describe("a report refused for good", () => {
  test("is set aside with the answer, announced as report.quarantined, and the rest flows", async () => {
    await using cp = await startInProcess()
    const proxy = refusingProxy(cp)
    await using node = await createTestNode({ name: "quarantine", boot: gen1 })
    const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    const agent = startAgent(node, { nodeId: "q-1", controlUrl: proxy.url, joinToken: token })
    try {
      await waitFor(
        "enrolment",
        async () => (await cp.api("/api/nodes/q-1")).status,
        (s) => s === 200,
        30_000,
      )
      const desire = (closure: StorePath) =>
        cp.api("/api/nodes/q-1/desired", { method: "PUT", body: JSON.stringify({ closure }) })
      expect((await desire(broken)).status).toBe(200)
      const quarantine = join(agent.stateDir, "quarantine")
      const files = await waitFor(
        "the refused report in the quarantine",
        () => readdir(quarantine).catch(() => [] as string[]),
        (f) => f.length > 0,
        60_000,
      )
      const first = files.sort((a, b) => a.localeCompare(b, "en", { numeric: true }))[0] ?? ""
      const kept = JSON.parse(await Bun.file(join(quarantine, first)).text())
      expect(kept).toMatchObject({ status: 422, report: { type: "heal.failed", data: { desired: broken } } })
      expect(kept.answer).toContain("unknown report type heal.failed")

      // The sender is not stuck behind it: a later heal's reports arrive, and the refusal is announced.
      expect((await desire(gen2)).status).toBe(200)
      const es = await waitFor(
        "heal.succeeded and report.quarantined stored",
        () => events(cp, "q-1"),
        (e) => e.some((x) => x.type === "heal.succeeded") && e.some((x) => x.type === "report.quarantined"),
        60_000,
      )
      const announced = es.find((e) => e.type === "report.quarantined")
      expect(announced?.data).toMatchObject({
        quarantinedSeq: kept.report.seq,
        quarantinedType: "heal.failed",
        status: 422,
        file: join(quarantine, first),
      })
      expect(es.some((e) => e.type === "heal.failed")).toBe(false)
      expect(agent.log()).toContain("control plane refused a report for good")
      // Every report the agent made is either stored or in the quarantine, none twice.
      const header = await waitFor(
        "the spool drained",
        async () => JSON.parse((await Bun.file(join(agent.stateDir, "spool.jsonl")).text()).split("\n")[0] ?? "{}"),
        (h: { lastSeq: number; ackedSeq: number }) => h.ackedSeq === h.lastSeq,
        30_000,
      )
      const stored = (await events(cp, "q-1")).flatMap((e) => (typeof e.data.seq === "number" ? [e.data.seq] : []))
      const setAside = (await readdir(quarantine)).map((f) => Number(/\d+/.exec(f)?.[0]))
      const announcedSeqs = (await events(cp, "q-1")).flatMap((e) =>
        e.type === "report.quarantined" ? [e.data.quarantinedSeq] : [],
      )
      expect(announcedSeqs.sort()).toEqual(setAside.sort())
      expect([...stored, ...setAside].sort((a, b) => a - b)).toEqual(
        Array.from({ length: header.lastSeq }, (_, i) => i + 1),
      )
      expect(proxy.refused()).toBeGreaterThan(0)
      expect(await agent.stop()).toBe(0)
    } catch (error) {
      await agent.stop()
      throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
    } finally {
      await proxy.stop()
    }
  }, 180_000)
})
