import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { NodeHealth } from "../../protocol/agent.ts"
import { startInProcess, type TestControlPlane } from "../../tests/support/control-plane.ts"
import { streamText } from "../../tests/support/stream.ts"
import type { FleetEvent } from "../domain/events.ts"

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/y1mlmacm344nc9ik51ajfsqv9pl6m87x-chimera-test-system-2"

async function enroll(cp: TestControlPlane, nodeId: string) {
  const jt = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
    token: string
  }
  const res = await fetch(`${cp.url}/api/agent/enroll`, {
    method: "POST",
    headers: { authorization: `Bearer ${jt.token}`, "content-type": "application/json" },
    body: JSON.stringify({ nodeId, hostname: nodeId, agentVersion: "test" }),
  })
  expect(res.status).toBe(201)
  const { credential } = (await res.json()) as { credential: string }
  const as = (path: string, init: RequestInit = {}) =>
    fetch(`${cp.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${credential}`, "content-type": "application/json" },
    })
  return { credential, joinToken: jt.token, as }
}

function health(
  nodeId: string,
  system: { profile: string; current: string; booted: string },
  phase: NodeHealth["phase"] = "congruent",
): NodeHealth {
  return {
    nodeId,
    agentVersion: "test",
    hostname: nodeId,
    at: new Date().toISOString(),
    uptimeSeconds: 10,
    load: [0.1, 0.2, 0.3],
    memory: { totalBytes: 1000, availableBytes: 500 },
    disk: { path: "/", totalBytes: 1000, freeBytes: 100 },
    system,
    desired: GEN1,
    phase,
    heartbeatIntervalSeconds: 0.5,
  }
}

describe("control plane API", () => {
  test("health is open; every other route needs a bearer token and answers a JSON error", async () => {
    await using cp = await startInProcess()
    expect((await fetch(`${cp.url}/api/health`)).status).toBe(200)
    for (const path of ["/api/nodes", "/api/events", "/api/nodes/x", "/api/agent/x/commands", "/api/nowhere"]) {
      const res = await fetch(`${cp.url}${path}`)
      expect(res.status).toBe(401)
      expect(((await res.json()) as { code: string }).code).toBe("AUTHENTICATION_FAILED")
    }
    const bad = await fetch(`${cp.url}/api/nodes`, { headers: { authorization: "Bearer chm_admin_notreal" } })
    expect(bad.status).toBe(401)
  })

  test("a join token enrols one node once; its credential acts only for that node", async () => {
    await using cp = await startInProcess()
    const a = await enroll(cp, "web-1")
    const again = await fetch(`${cp.url}/api/agent/enroll`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.joinToken}`, "content-type": "application/json" },
      body: JSON.stringify({ nodeId: "web-9", agentVersion: "test" }),
    })
    expect(again.status).toBe(401)
    expect(((await again.json()) as { error: string }).error).toContain("single-use")

    await enroll(cp, "web-2")
    const cross = await a.as("/api/agent/web-2/heartbeat", {
      method: "POST",
      body: JSON.stringify(health("web-2", { profile: GEN1, current: GEN1, booted: GEN1 })),
    })
    expect(cross.status).toBe(403)
    const spoof = await a.as("/api/agent/web-1/heartbeat", {
      method: "POST",
      body: JSON.stringify(health("web-2", { profile: GEN1, current: GEN1, booted: GEN1 })),
    })
    expect(spoof.status).toBe(403)
    const admin = await a.as("/api/nodes")
    expect(admin.status).toBe(403)
  })

  test("status follows heartbeats and the desired closure; events list in order with filters", async () => {
    await using cp = await startInProcess()
    const n = await enroll(cp, "db-1")
    expect(((await (await cp.api("/api/nodes/db-1")).json()) as { status: string }).status).toBe("unknown")

    const put = await cp.api("/api/nodes/db-1/desired", { method: "PUT", body: JSON.stringify({ closure: GEN1 }) })
    expect(put.status).toBe(200)
    await n.as("/api/agent/db-1/heartbeat", {
      method: "POST",
      body: JSON.stringify(health("db-1", { profile: GEN2, current: GEN2, booted: GEN1 }, "drifted")),
    })
    let view = (await (await cp.api("/api/nodes/db-1")).json()) as Record<string, unknown>
    expect(view.status).toBe("drifted")
    expect(view.desiredHash).toBe("yqjaw21d05si79hnrp0rfzyhb7403rdm")
    expect(view.currentHash).toBe("y1mlmacm344nc9ik51ajfsqv9pl6m87x")

    const hb = await n.as("/api/agent/db-1/heartbeat", {
      method: "POST",
      body: JSON.stringify(health("db-1", { profile: GEN1, current: GEN1, booted: GEN1 })),
    })
    expect(await hb.json()).toEqual({ desired: GEN1 })
    view = (await (await cp.api("/api/nodes/db-1")).json()) as Record<string, unknown>
    expect(view.status).toBe("healthy")
    expect(view.currentHash).toBe(view.desiredHash)

    const events = (await (await cp.api("/api/events?node=db-1")).json()) as { events: { type: string; id: number }[] }
    expect(events.events.map((e) => e.type)).toEqual(["node.enrolled", "desired.changed"])
    const filtered = (await (await cp.api("/api/events?type=desired.changed")).json()) as { events: unknown[] }
    expect(filtered.events).toHaveLength(1)
  })

  test("no node enrols as `health`, the name of MCP's fleet-wide resource: the join token or the enrolment says so", async () => {
    await using cp = await startInProcess()
    const reserved = 'node id "health" is reserved'
    const named = await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId: "health" }) })
    expect(named.status).toBe(422)
    expect(((await named.json()) as { error: string }).error).toContain(reserved)
    const open = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    const enrol = await fetch(`${cp.url}/api/agent/enroll`, {
      method: "POST",
      headers: { authorization: `Bearer ${open.token}`, "content-type": "application/json" },
      body: JSON.stringify({ nodeId: "health", hostname: "h", agentVersion: "test" }),
    })
    expect(enrol.status).toBe(422)
    expect(((await enrol.json()) as { error: string }).error).toContain(reserved)
    // The token is not spent by the refusal: the node enrols under another name with it. `node://Health`
    // keeps its case, so only `health` itself is taken.
    const ok = await fetch(`${cp.url}/api/agent/enroll`, {
      method: "POST",
      headers: { authorization: `Bearer ${open.token}`, "content-type": "application/json" },
      body: JSON.stringify({ nodeId: "Health", hostname: "h", agentVersion: "test" }),
    })
    expect(ok.status).toBe(201)
  })

  test("tail=true answers the last `limit` events that match, oldest first; a bad flag is a 422", async () => {
    await using cp = await startInProcess()
    await enroll(cp, "web-1")
    await enroll(cp, "web-2")
    for (const closure of [GEN1, GEN2, GEN1]) {
      for (const node of ["web-1", "web-2"])
        await cp.api(`/api/nodes/${node}/desired`, { method: "PUT", body: JSON.stringify({ closure }) })
    }
    const read = async (q: string) =>
      ((await (await cp.api(`/api/events?${q}`)).json()) as { events: { id: number; nodeId: string }[] }).events
    const all = await read("node=web-1")
    expect(all).toHaveLength(4)
    expect(await read("node=web-1&limit=2")).toEqual(all.slice(0, 2))
    expect(await read("node=web-1&limit=2&tail=true")).toEqual(all.slice(-2))
    expect(await read("node=web-1&limit=2&tail=1")).toEqual(all.slice(-2))
    expect(await read("node=web-1&limit=10&tail=true")).toEqual(all)
    // With `after`, the last of those that follow it.
    expect(await read(`node=web-1&limit=2&tail=true&after=${all[2]?.id}`)).toEqual(all.slice(-1))
    expect(await read("node=nobody&tail=true")).toEqual([])
    const bad = await cp.api("/api/events?tail=yes")
    expect(bad.status).toBe(422)
    expect(((await bad.json()) as { error: string }).error).toContain("query.tail: expected true or false")
  })

  test("a page of events stops before 8 MiB of their data, from the oldest or (tail) the newest side", async () => {
    await using cp = await startInProcess()
    const db = new Database(join(cp.dataDir, "chimera.db"))
    const at = new Date().toISOString()
    const output = "x".repeat(1024 * 1024)
    for (let attempt = 1; attempt <= 12; attempt++)
      db.run("INSERT INTO events (type, node_id, at, received_at, data) VALUES ('heal.failed', 'big-1', ?, ?, ?)", [
        at,
        at,
        JSON.stringify({ desired: GEN1, attempt, error: "failed", output }),
      ])
    db.close()
    const read = async (q: string) =>
      ((await (await cp.api(`/api/events?node=big-1&${q}`)).json()) as { events: FleetEvent[] }).events
    const attempts = (events: FleetEvent[]) => events.map((e) => e.data.attempt)
    const bytes = (events: FleetEvent[]) => events.reduce((n, e) => n + JSON.stringify(e.data).length, 0)
    const oldest = await read("limit=1000")
    expect(attempts(oldest)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(bytes(oldest)).toBeLessThanOrEqual(8 * 1024 * 1024)
    expect(attempts(await read("limit=1000&tail=true"))).toEqual([6, 7, 8, 9, 10, 11, 12])
    expect(attempts(await read("limit=3&tail=true"))).toEqual([10, 11, 12])
  })

  test("the event stream replays what follows Last-Event-ID, then sends live events that match its filter", async () => {
    await using cp = await startInProcess()
    await enroll(cp, "web-1")
    await enroll(cp, "web-2")
    const desire = (node: string, closure: string) =>
      cp.api(`/api/nodes/${node}/desired`, { method: "PUT", body: JSON.stringify({ closure }) })
    await desire("web-1", GEN1)
    const before = (await (await cp.api("/api/events?node=web-1")).json()) as { events: { id: number }[] }
    const enrolled = before.events[0]?.id ?? 0

    const leave = new AbortController()
    const res = await fetch(`${cp.url}/api/events/stream?node=web-1`, {
      headers: { authorization: `Bearer ${cp.adminToken}`, "last-event-id": String(enrolled) },
      signal: leave.signal,
    })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/event-stream")
    const stream = streamText(res.body as ReadableStream<Uint8Array>)
    /** The events (not the ready frame or keep-alives) read so far. */
    const frames = (text: string) => text.split("\n\n").filter((f) => /^id: /m.test(f))
    /** Reads until `count` events have arrived; returns them. */
    const events = async (count: number) => {
      if (await stream.until((text) => frames(text).length >= count))
        throw new Error(`the stream ended after: ${stream.text}`)
      return frames(stream.text).map((f) => ({
        id: Number(/^id: (.*)$/m.exec(f)?.[1]),
        type: /^event: (.*)$/m.exec(f)?.[1],
        node: (JSON.parse(/^data: (.*)$/m.exec(f)?.[1] ?? "{}") as { nodeId: string }).nodeId,
      }))
    }
    // Replay: web-1's desired.changed follows its enrolment; web-2's events are filtered out.
    const [replayed] = await events(1)
    expect(replayed).toMatchObject({ type: "desired.changed", node: "web-1" })
    expect(replayed?.id).toBeGreaterThan(enrolled)

    await desire("web-2", GEN2)
    await desire("web-1", GEN2)
    const live = await events(2)
    expect(live[1]).toMatchObject({ type: "desired.changed", node: "web-1" })
    expect(live[1]?.id).toBeGreaterThan(replayed?.id ?? 0)
    expect(stream.text).not.toContain('"nodeId":"web-2"')
    leave.abort()
  })

  test("an event stream with `limit` starts with the last `limit` matching events, unless it resumes", async () => {
    await using cp = await startInProcess()
    await enroll(cp, "web-1")
    await enroll(cp, "web-2")
    const desire = (node: string, closure: string) =>
      cp.api(`/api/nodes/${node}/desired`, { method: "PUT", body: JSON.stringify({ closure }) })
    for (const closure of [GEN1, GEN2, GEN1]) await desire("web-1", closure)
    await desire("web-2", GEN2)
    const past = (await (await cp.api("/api/events?node=web-1")).json()) as { events: { id: number }[] }
    expect(past.events).toHaveLength(4) // enrolled, then desired three times

    const leave = new AbortController()
    const open = (query: string, headers: Record<string, string> = {}) =>
      fetch(`${cp.url}/api/events/stream?${query}`, {
        headers: { authorization: `Bearer ${cp.adminToken}`, ...headers },
        signal: leave.signal,
      }).then((res) => streamText(res.body as ReadableStream<Uint8Array>))
    const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
    const pastIds = past.events.map((e) => e.id)

    const tail = await open("node=web-1&limit=2")
    await tail.until((text) => ids(text).length >= 2)
    await desire("web-1", GEN2)
    await tail.until((text) => ids(text).length >= 3)
    const [live] = ids(tail.text).slice(2)
    expect(ids(tail.text)).toEqual([...pastIds.slice(-2), live ?? 0])
    expect(live).toBeGreaterThan(pastIds.at(-1) ?? 0)
    expect(tail.text).not.toContain('"nodeId":"web-2"')

    // A reconnection (Last-Event-ID) gets all it missed, however many: `limit` is for the first start.
    const resumed = await open("node=web-1&limit=1", { "last-event-id": String(pastIds[0]) })
    await resumed.until((text) => ids(text).length >= 4)
    expect(ids(resumed.text)).toEqual([...pastIds.slice(1), live ?? 0])
    leave.abort()
  }, 10_000)

  test("an event stream whose token is revoked sends nothing more: an error event, then it ends", async () => {
    await using cp = await startInProcess()
    await enroll(cp, "web-1")
    const made = await cp.api("/api/tokens", {
      method: "POST",
      body: JSON.stringify({ name: "dashboard", role: "viewer" }),
    })
    const { id, token } = (await made.json()) as { id: string; token: string }
    const res = await fetch(`${cp.url}/api/events/stream`, { headers: { authorization: `Bearer ${token}` } })
    expect(res.status).toBe(200)
    const stream = streamText(res.body as ReadableStream<Uint8Array>)
    const readUntil = (pattern: RegExp) => stream.until((text) => pattern.test(text))
    await readUntil(/event: ready/)
    const desire = (closure: string) =>
      cp.api("/api/nodes/web-1/desired", { method: "PUT", body: JSON.stringify({ closure }) })
    await desire(GEN1)
    await readUntil(/event: desired\.changed/)

    expect((await cp.api(`/api/tokens/${id}`, { method: "DELETE" })).status).toBeLessThan(300)
    await desire(GEN2)
    await readUntil(/event: error/)
    expect(await readUntil(/never/)).toBe(true) // the server ended the stream
    expect(stream.text.match(/event: desired\.changed/g)).toHaveLength(1)
    expect(stream.text).toContain("the API token is unknown or revoked; the event stream ends")
  })

  test("reports are stored once each, in order, and acknowledged by sequence", async () => {
    await using cp = await startInProcess()
    const n = await enroll(cp, "app-1")
    const at = new Date().toISOString()
    const report = (seq: number, type: "heal.started" | "heal.succeeded") =>
      type === "heal.started"
        ? { seq, at, type, data: { desired: GEN1, attempt: 1 } }
        : { seq, at, type, data: { desired: GEN1, attempt: 1, durationMs: 12 } }
    const send = async (reports: unknown[]) =>
      (await (
        await n.as("/api/agent/app-1/reports", { method: "POST", body: JSON.stringify({ reports }) })
      ).json()) as { ackedSeq: number }

    expect(await send([report(1, "heal.started"), report(2, "heal.succeeded")])).toEqual({ ackedSeq: 2 })
    // A replay after a lost answer: nothing is stored twice.
    expect(await send([report(1, "heal.started"), report(2, "heal.succeeded"), report(3, "heal.started")])).toEqual({
      ackedSeq: 3,
    })
    const events = (await (await cp.api("/api/events?node=app-1&type=heal.started,heal.succeeded")).json()) as {
      events: { type: string; data: { seq: number } }[]
    }
    expect(events.events.map((e) => [e.type, e.data.seq])).toEqual([
      ["heal.started", 1],
      ["heal.succeeded", 2],
      ["heal.started", 3],
    ])
  })

  test("setting the desired closure wakes the node's command long poll; the ack closes it", async () => {
    await using cp = await startInProcess()
    const n = await enroll(cp, "edge-1")
    const poll = n.as("/api/agent/edge-1/commands?wait=10")
    await Bun.sleep(50)
    const t0 = performance.now()
    await cp.api("/api/nodes/edge-1/desired", { method: "PUT", body: JSON.stringify({ closure: GEN2 }) })
    const { commands } = (await (await poll).json()) as { commands: { id: string; kind: string; closure: string }[] }
    expect(performance.now() - t0).toBeLessThan(2000)
    expect(commands).toHaveLength(1)
    expect(commands[0]).toMatchObject({ kind: "activate", closure: GEN2 })

    const ack = await n.as(`/api/agent/edge-1/commands/${commands[0]?.id}/ack`, {
      method: "POST",
      body: JSON.stringify({ success: true }),
    })
    expect(ack.status).toBe(200)
    const twice = await n.as(`/api/agent/edge-1/commands/${commands[0]?.id}/ack`, {
      method: "POST",
      body: JSON.stringify({ success: true }),
    })
    expect(twice.status).toBe(409)
    const empty = (await (await n.as("/api/agent/edge-1/commands")).json()) as { commands: unknown[] }
    expect(empty.commands).toEqual([])
  })

  test("a node that stops heartbeating becomes unreachable with one event, and reachable again", async () => {
    await using cp = await startInProcess()
    const n = await enroll(cp, "cache-1")
    const beat = () =>
      n.as("/api/agent/cache-1/heartbeat", {
        method: "POST",
        body: JSON.stringify(health("cache-1", { profile: GEN1, current: GEN1, booted: GEN1 })),
      })
    await beat()
    // Interval 0.5 s (the least a node may say): three missed are 1.5 s; the sweep runs every 0.2 s.
    for (let i = 0; i < 50; i++) {
      const view = (await (await cp.api("/api/nodes/cache-1")).json()) as { status: string }
      if (view.status === "unreachable") break
      await Bun.sleep(100)
    }
    expect(((await (await cp.api("/api/nodes/cache-1")).json()) as { status: string }).status).toBe("unreachable")
    await Bun.sleep(500)
    await beat()
    const events = (await (await cp.api("/api/events?node=cache-1&type=node.unreachable,node.reachable")).json()) as {
      events: { type: string }[]
    }
    expect(events.events.map((e) => e.type)).toEqual(["node.unreachable", "node.reachable"])
  })

  test("bad input gets a 4xx that names the problem", async () => {
    await using cp = await startInProcess()
    const badJson = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{nope" })
    expect(badJson.status).toBe(400)
    const badField = await cp.api("/api/nodes/join-tokens", {
      method: "POST",
      body: JSON.stringify({ ttlSeconds: "soon" }),
    })
    expect(badField.status).toBe(422)
    const body = (await badField.json()) as { error: string; detail: { issues: { path: string }[] } }
    expect(body.error).toContain("ttlSeconds")
    expect(body.detail.issues[0]?.path).toBe("ttlSeconds")
    const badClosure = await cp.api("/api/nodes/x/desired", {
      method: "PUT",
      body: JSON.stringify({ closure: "/tmp/evil" }),
    })
    expect(badClosure.status).toBe(422)
    const missing = await cp.api("/api/nodes/ghost/desired", { method: "PUT", body: JSON.stringify({ closure: GEN1 }) })
    expect(missing.status).toBe(404)
    const huge = await cp.api("/api/nodes/join-tokens", {
      method: "POST",
      body: JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) }),
    })
    expect(huge.status).toBe(413)
    const form = await cp.api("/api/nodes/join-tokens", {
      method: "POST",
      body: "a=b",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    })
    expect(form.status).toBe(415)
  })
})
