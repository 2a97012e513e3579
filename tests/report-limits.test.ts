// What one node credential can cost the control plane, against a real control plane: a body nested
// deeper than any Chimera request is refused before it is parsed (both ways in: with a Content-Length
// through the agent fast path, chunked through the full chain); a node past its report quota gets a
// 429 with Retry-After before its body is read, and a real agent replaying a large spool under that
// quota waits as told and loses nothing; events older than [retention] event_days are pruned.
import { describe, expect, test } from "bun:test"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "./support/agent-process.ts"
import { call, enrollNode, healFailedReport } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestNode } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

type Events = { events: { id: number; type: string; data: { seq?: number } }[] }

describe("report limits", () => {
  test("a body nested deeper than 64 levels is refused before it is parsed, with or without Content-Length", async () => {
    // The quota is lifted here: 8 MiB bodies would otherwise spend it, which the next test shows.
    await using cp = await startInProcess({ limits: { reports: { bytes: 1e12 } } })
    const credential = await enrollNode(cp, "deep")
    const headers = { authorization: `Bearer ${credential}`, "content-type": "application/json" }
    const url = `${cp.url}/api/agent/deep/reports`
    const nested = `{"reports":${"[".repeat(8 * 1024 * 1024)}`
    const chunked = (text: string) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(text))
          c.close()
        },
      })
    const sized = await fetch(url, { method: "POST", headers, body: nested })
    expect(sized.status).toBe(400)
    const body = (await sized.json()) as { code: string; error: string }
    expect(body.code).toBe("INVALID_JSON")
    expect(body.error).toContain("nests deeper than 64 levels")
    // A user route reads bodies the same way, chunked (no Content-Length) or not.
    for (const sent of [`{"a":${"[".repeat(100)}`, chunked(`{"a":${"[".repeat(100)}`)]) {
      const admin = await cp.api("/api/nodes/join-tokens", { method: "POST", body: sent })
      expect(admin.status).toBe(400)
      expect(((await admin.json()) as { error: string }).error).toContain("nests deeper than 64 levels")
    }
  })

  test("a report's lists are bounded: drift kinds each once, a compaction's report types", async () => {
    await using cp = await startInProcess()
    const credential = await enrollNode(cp, "listy")
    const links = { profile: GEN, current: GEN, booted: GEN }
    const send = (report: Record<string, unknown>) =>
      call(cp, credential, "POST", "/api/agent/listy/reports", {
        reports: [{ seq: 1, at: new Date().toISOString(), ...report }],
      })
    const drift = (kinds: string[]) => send({ type: "drift.detected", data: { kinds, desired: GEN, system: links } })
    const many = await drift(Array(100_000).fill("runtime-drift"))
    expect(many.status).toBe(422)
    expect(((await many.json()) as { error: string }).error).toContain("reports.0.data.kinds")
    const twice = await drift(["runtime-drift", "runtime-drift"])
    expect(twice.status).toBe(422)
    expect(((await twice.json()) as { error: string }).error).toContain("each drift kind at most once")
    const compacted = (types: number) =>
      send({
        type: "reports.compacted",
        data: {
          fromSeq: 1,
          toSeq: 2,
          dropped: types,
          byType: Object.fromEntries(Array.from({ length: types }, (_, i) => [`type-${i}`, 1])),
          criticalDropped: 0,
          maxBytes: 1_048_576,
        },
      })
    const wide = await compacted(65)
    expect(wide.status).toBe(422)
    expect(((await wide.json()) as { error: string }).error).toContain("at most 64 report types")
    // Nothing of them was stored; what the agent sends is taken.
    expect((await drift(["profile-drift", "runtime-drift"])).status).toBe(200)
    const events = (await (await cp.api("/api/events?node=listy&type=drift.detected")).json()) as {
      events: { data: { kinds: string[] } }[]
    }
    expect(events.events.map((e) => e.data.kinds)).toEqual([["profile-drift", "runtime-drift"]])
  })

  test("a chunked report batch is refused before its body is read: its quota needs its length", async () => {
    // Read first, 40 of them at 46 MB from one node over its quota held 3.5 GB before each was told 429.
    await using cp = await startInProcess()
    const credential = await enrollNode(cp, "chunky")
    let pulled = 0
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++
        c.enqueue(new TextEncoder().encode(`{"reports":[${" ".repeat(64 * 1024)}`))
      },
    })
    const res = await fetch(`${cp.url}/api/agent/chunky/reports`, {
      method: "POST",
      headers: { authorization: `Bearer ${credential}`, "content-type": "application/json" },
      body: endless,
    })
    expect(res.status).toBe(411)
    expect(await res.json()).toEqual({
      error: "a report batch needs a Content-Length header (it is not read chunked)",
      code: "LENGTH_REQUIRED",
    })
    // Answered without reading on: what was sent before the answer came is all the server let in.
    expect(pulled).toBeLessThan(64)
  })

  test("a node past its report quota gets a 429 with Retry-After and nothing stored; the quota refills", async () => {
    const clock = manualClock()
    await using cp = await startInProcess({
      clock,
      limits: { reports: { bytes: 200_000, reports: 10_000, windowMs: 60_000 } },
    })
    const credential = await enrollNode(cp, "chatty")
    const send = (from: number) =>
      call(cp, credential, "POST", "/api/agent/chatty/reports", {
        reports: Array.from({ length: 10 }, (_, i) => healFailedReport(from + i, 15_000)),
      })
    expect((await send(1)).status).toBe(200) // ~150 KB of 200 KB
    // Admitted while any quota is left, and charged though it fails its schema: now in debt.
    const bad = await call(cp, credential, "POST", "/api/agent/chatty/reports", {
      reports: [],
      pad: "x".repeat(150_000),
    })
    expect(bad.status).toBe(422)
    const refused = await send(11)
    expect(refused.status).toBe(429)
    const retryAfter = Number(refused.headers.get("retry-after"))
    expect(retryAfter).toBeGreaterThanOrEqual(1)
    expect(retryAfter).toBeLessThanOrEqual(60)
    const body = (await refused.json()) as { code: string; message: string; retryAfter: number }
    expect(body.code).toBe("RATE_LIMIT_EXCEEDED")
    expect(body.message).toContain("[limits] node_report_bytes")
    expect(body.retryAfter).toBe(retryAfter)
    const stored = async () =>
      ((await (await cp.api("/api/events?node=chatty&type=heal.failed&limit=1000")).json()) as Events).events
    expect((await stored()).map((e) => e.data.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))

    // Another node is not affected by this one's quota.
    const other = await enrollNode(cp, "quiet")
    const fine = await call(cp, other, "POST", "/api/agent/quiet/reports", { reports: [healFailedReport(1)] })
    expect(fine.status).toBe(200)

    clock.advance(retryAfter * 1000)
    expect((await send(11)).status).toBe(200)
    expect((await stored()).length).toBe(20)
  })

  test("a node that keeps sending is held to its day's bytes, with a Retry-After that says so", async () => {
    const clock = manualClock()
    await using cp = await startInProcess({
      clock,
      limits: { reports: { bytes: 200_000, reports: 10_000, windowMs: 60_000, dayBytes: 400_000 } },
    })
    const credential = await enrollNode(cp, "steady")
    const send = (from: number) =>
      call(cp, credential, "POST", "/api/agent/steady/reports", {
        reports: Array.from({ length: 10 }, (_, i) => healFailedReport(from + i, 15_000)),
      })
    // ~150 KB a minute: within each minute's 200 KB, past the day's 400 KB at the third.
    for (const from of [1, 11, 21]) {
      expect((await send(from)).status).toBe(200)
      clock.advance(60_000)
    }
    const refused = await send(31)
    expect(refused.status).toBe(429)
    const body = (await refused.json()) as { code: string; message: string; retryAfter: number }
    expect(body.message).toContain("[limits] node_report_bytes_per_day 400000")
    // The body's limit and window are the day's, not the minute's report count.
    expect(body).toMatchObject({ limit: 400_000, window: "86400s" })
    // Back when the day's share has refilled to a minute's bytes: about 12 hours at this rate.
    expect(body.retryAfter).toBeGreaterThan(3600)
    expect(Number(refused.headers.get("retry-after"))).toBe(body.retryAfter)
    const other = await enrollNode(cp, "calm")
    expect((await call(cp, other, "POST", "/api/agent/calm/reports", { reports: [healFailedReport(1)] })).status).toBe(
      200,
    )
    clock.advance(60_000)
    expect((await send(31)).status).toBe(429)
    clock.advance(body.retryAfter * 1000)
    expect((await send(31)).status).toBe(200)
  })

  test("events older than [retention] event_days are pruned; recent ones stay", async () => {
    const clock = manualClock()
    await using cp = await startInProcess({ clock, retention: { commandDays: 0, eventDays: 1, intervalMs: 50 } })
    const credential = await enrollNode(cp, "old")
    // A heal that succeeded: a report that opens no incident, so the events are the node's own two.
    const healed = {
      seq: 1,
      at: new Date().toISOString(),
      type: "heal.succeeded",
      data: { desired: GEN, attempt: 1, durationMs: 5 },
    }
    const sent = await call(cp, credential, "POST", "/api/agent/old/reports", { reports: [healed] })
    expect(sent.status).toBe(200)
    const all = async () => ((await (await cp.api("/api/events?limit=1000")).json()) as Events).events
    const before = await all()
    expect(before.map((e) => e.type)).toEqual(["node.enrolled", "heal.succeeded"])

    clock.advance(2 * 86_400_000)
    await enrollNode(cp, "new")
    await waitFor("the old events pruned", all, (events) => events.every((e) => e.id > (before.at(-1)?.id ?? 0)))
    expect((await all()).map((e) => e.type)).toEqual(["node.enrolled"])
  })
})

describe("deployment records", () => {
  test("those finished longer ago than [retention] deployment_days are pruned; recent ones stay", async () => {
    const clock = manualClock()
    await using cp = await startInProcess({
      clock,
      retention: { commandDays: 0, eventDays: 0, deploymentDays: 1, intervalMs: 50 },
    })
    const record = (id: string, at: string) => ({
      id,
      kind: "deploy",
      createdAt: at,
      finishedAt: at,
      configPath: "/etc/x.nix",
      closure: GEN,
      hash: GEN.slice(11, 43),
      isSystem: true,
      command: null,
      session: "s",
      status: "succeeded",
      targets: [{ target: "n1", status: "deployed", before: null, copy: null, previous: null, error: null }].map(
        (t) => ({ ...t, timings: [], startedAt: at, ms: 1, log: ["copied"] }),
      ),
    })
    const ids = async () =>
      ((await (await cp.api("/api/deployments?limit=100")).json()) as { deployments: { id: string }[] }).deployments
        .map((d) => d.id)
        .sort()
    const old = await call(
      cp,
      cp.adminToken,
      "POST",
      "/api/deployments/records",
      record("old-1", clock.now().toISOString()),
    )
    expect(old.status).toBe(201)
    clock.advance(2 * 86_400_000)
    const recent = record("new-1", clock.now().toISOString())
    expect((await call(cp, cp.adminToken, "POST", "/api/deployments/records", recent)).status).toBe(201)
    await waitFor("the old record pruned", ids, (list) => !list.includes("old-1"))
    expect(await ids()).toEqual(["new-1"])
  })
})

describe("a real agent under its report quota", () => {
  test("replays a spool of 1,200 reports through 429s, waiting as told, and loses none", async () => {
    const gen1: StorePath = await buildTestSystem(1, { tag: "quota" })
    await using cp = await startInProcess({ limits: { reports: { bytes: 1e9, reports: 250, windowMs: 1000 } } })
    await using node = await createTestNode({ name: "quota-agent", boot: gen1 })
    // What a node that could not reach its control plane for a while has spooled.
    const stateDir = join(node.dir, "agent-state")
    mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    const spooled = Array.from({ length: 1200 }, (_, i) => healFailedReport(i + 1))
    const lines = [{ spool: 1, lastSeq: 1200, ackedSeq: 0 }, ...spooled].map((l) => JSON.stringify(l))
    writeFileSync(join(stateDir, "spool.jsonl"), `${lines.join("\n")}\n`, { mode: 0o600 })

    const jt = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    await using agent = startAgent(node, { nodeId: "quota-agent", controlUrl: cp.url, joinToken: jt.token })
    const count = async () => {
      let after = 0
      const seqs: number[] = []
      for (;;) {
        const page = (
          (await (
            await cp.api(`/api/events?node=quota-agent&type=heal.failed&limit=1000&after=${after}`)
          ).json()) as Events
        ).events
        seqs.push(...page.map((e) => e.data.seq ?? 0))
        if (page.length < 1000) return seqs
        after = page.at(-1)?.id ?? after
      }
    }
    const seqs = await waitFor("all 1,200 spooled reports stored", count, (s) => s.length >= 1200, 90_000)
    expect(seqs).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1))
    const slowDowns = agent.log().match(/send reports more slowly/g)?.length ?? 0
    expect(slowDowns).toBeGreaterThanOrEqual(1) // the quota was met
    expect(slowDowns).toBeLessThanOrEqual(10) // and waited out, not hammered
    expect(agent.log()).not.toContain("spooling until the control plane is back")
  }, 180_000)
})
