// Live event streams under load, against a real control plane: streams are capped per user and in
// total (a 429 that names the cap), and a client that reads only the headers while a node floods
// large reports costs the control plane a bounded amount, then, when it reads again, receives every
// event in order from the store, none lost and none twice.
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { connect, type Socket } from "node:net"
import { join } from "node:path"
import { addUser, call, enrollNode, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { streamText } from "./support/stream.ts"
import { waitFor } from "./support/wait.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

const open = (url: string, token: string, signal?: AbortSignal) =>
  fetch(`${url}/api/events/stream`, { headers: { authorization: `Bearer ${token}` }, signal })

function healFailed(seq: number) {
  return {
    seq,
    at: new Date().toISOString(),
    type: "heal.failed",
    data: {
      desired: GEN,
      attempt: seq,
      durationMs: 5,
      error: "switch-to-configuration failed",
      output: `${seq} `.padEnd(60_000, "x"),
      retryInMs: 1000,
    },
  }
}

describe("event streams", () => {
  test("streams are capped per user (sessions together) and in total: past a cap a 429 says which", async () => {
    await using cp = await startInProcess({ limits: { streams: { perUser: 3, total: 4 } } })
    await addUser(cp, "vera", "viewer")
    const [s1, s2] = [await login(cp, "vera"), await login(cp, "vera")]
    const leave = new AbortController()
    for (const token of [s1, s1, s2]) {
      const res = await open(cp.url, token, leave.signal)
      expect(res.status).toBe(200)
      await streamText(res.body as ReadableStream<Uint8Array>).until((t) => t.includes("event: ready"))
    }
    const fourth = await open(cp.url, s2)
    expect(fourth.status).toBe(429)
    const refusal = (await fourth.json()) as { code: string; error: string }
    expect(refusal.code).toBe("RESOURCE_EXHAUSTED")
    expect(refusal.error).toContain("you already have 3 event streams open")
    expect(refusal.error).toContain("[limits] event_streams_per_user")

    // Another user still gets one, up to the total.
    const admin = await open(cp.url, cp.adminToken, leave.signal)
    expect(admin.status).toBe(200)
    const overTotal = await open(cp.url, cp.adminToken)
    expect(overTotal.status).toBe(429)
    expect(((await overTotal.json()) as { error: string }).error).toContain("[limits] event_streams")

    // Clients that leave free their slots.
    leave.abort()
    await waitFor(
      "the slots of the streams that left",
      async () => {
        const res = await open(cp.url, s1)
        await res.body?.cancel()
        return res.status
      },
      (s) => s === 200,
    )
  })

  test("an API token has streams of its own: one an admin made cannot spend the admin's", async () => {
    await using cp = await startInProcess({ limits: { streams: { perUser: 2, total: 10 } } })
    const made = (await (
      await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "wall screen", role: "viewer" })
    ).json()) as { token: string }
    const leave = new AbortController()
    for (let i = 0; i < 2; i++) {
      const res = await open(cp.url, made.token, leave.signal)
      expect(res.status).toBe(200)
      await streamText(res.body as ReadableStream<Uint8Array>).until((t) => t.includes("event: ready"))
    }
    expect((await open(cp.url, made.token)).status).toBe(429)
    const admin = await open(cp.url, cp.adminToken, leave.signal)
    expect(admin.status).toBe(200)
    leave.abort()
  })

  test("a HEAD of the stream holds no slot: the headers come, and the stream is left at once", async () => {
    await using cp = await startInProcess({ limits: { streams: { perUser: 2, total: 10 } } })
    await addUser(cp, "vera", "viewer")
    const vera = await login(cp, "vera")
    // Bun sends no body for a HEAD and never reads (or cancels) one: each used to keep its slot for good.
    for (let i = 0; i < 5; i++) {
      const head = await fetch(`${cp.url}/api/events/stream`, {
        method: "HEAD",
        headers: { authorization: `Bearer ${vera}` },
      })
      expect(head.status).toBe(200)
      expect(head.headers.get("content-type")).toBe("text/event-stream")
    }
    const res = await open(cp.url, vera)
    expect(res.status).toBe(200)
    await res.body?.cancel()
  })

  test("a stream whose read of the store fails ends and frees its slot (a database away, a table gone)", async () => {
    await using cp = await startInProcess({ limits: { streams: { perUser: 2, total: 10 } } })
    await addUser(cp, "vera", "viewer")
    const vera = await login(cp, "vera")
    // The events table away stands for the database away while a stream replays or catches up.
    const db = new Database(join(cp.dataDir, "chimera.db"))
    db.run("ALTER TABLE events RENAME TO events_moved")
    // The replay's read fails right after the ready event: the stream ends there, for its client to
    // come back with Last-Event-ID.
    for (let i = 0; i < 3; i++) {
      const ended = await fetch(`${cp.url}/api/events/stream?after=0`, { headers: { authorization: `Bearer ${vera}` } })
        .then((res) => streamText(res.body as ReadableStream<Uint8Array>).until(() => false))
        .catch(() => true)
      expect(ended).toBe(true)
    }
    db.run("ALTER TABLE events_moved RENAME TO events")
    db.close()
    const res = await open(cp.url, vera)
    expect(res.status).toBe(200)
    await res.body?.cancel()
  })

  test("a client reading only headers during a flood holds nothing; reading again, it gets every event in order", async () => {
    await using cp = await startInProcess({ limits: { reports: { bytes: 1e12, reports: 1e9 } } })
    const credential = await enrollNode(cp, "chatty")
    const port = Number(new URL(cp.url).port)
    const socket: Socket = connect(port, "127.0.0.1")
    // Frames as they arrive (the chunked encoding's size lines fall between frames, outside them).
    let pending = ""
    let ready = false
    const ids: number[] = []
    const seqs: number[] = []
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      pending += chunk
      for (let end = pending.indexOf("\n\n"); end >= 0; end = pending.indexOf("\n\n")) {
        const frame = pending.slice(0, end)
        pending = pending.slice(end + 2)
        if (frame.includes("event: ready")) ready = true
        const id = /^id: (\d+)$/m.exec(frame)?.[1]
        if (id !== undefined) ids.push(Number(id))
        if (/^event: heal\.failed$/m.test(frame))
          seqs.push((JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? "{}") as { data: { seq: number } }).data.seq)
      }
    })
    await new Promise<void>((resolve) => socket.once("connect", resolve))
    socket.write(
      `GET /api/events/stream?node=chatty&after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${cp.adminToken}\r\n\r\n`,
    )
    await waitFor(
      "the stream's headers",
      async () => ready,
      (r) => r,
    )
    socket.pause() // reads nothing more: the kernel's buffers fill, then the control plane's bound
    try {
      const total = 600
      for (let seq = 1; seq <= total; seq += 50) {
        const reports = Array.from({ length: 50 }, (_, i) => healFailed(seq + i))
        const res = await call(cp, credential, "POST", "/api/agent/chatty/reports", { reports })
        expect(res.status).toBe(200)
      }
      socket.resume()
      await waitFor(
        `all ${total} heal.failed events on the stream`,
        async () => seqs.length,
        (n) => n >= total,
        60_000,
      )
      // Read back a page at a time: a page stops before 8 MiB of event data.
      const stored: number[] = []
      for (let page = [-1]; page.length > 0; ) {
        const after = stored.at(-1) ?? 0
        const res = await cp.api(`/api/events?node=chatty&limit=1000&after=${after}`)
        page = ((await res.json()) as { events: { id: number }[] }).events.map((e) => e.id)
        stored.push(...page)
      }
      expect(ids).toEqual(stored)
      expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    } finally {
      socket.destroy()
    }
  }, 120_000)
})
