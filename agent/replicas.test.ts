// The choice of replica: sticky, moved on by a failure seen on the current replica only, wrapping round;
// back to the first once it says it is ready again.
import { describe, expect, test } from "bun:test"
import { waitFor } from "../tests/support/wait.ts"
import { createReplicas, replicaReady, spreadOrder } from "./replicas.ts"

describe("replicas", () => {
  test("sticks to one until it fails, then moves to the next, wrapping round", () => {
    const r = createReplicas(["http://a.example", "http://b.example/", "http://c.example"])
    expect(r.current()).toEqual({ url: "http://a.example/", index: 0 })
    expect(r.current().index).toBe(0)
    r.failed(0, "refused")
    expect(r.current()).toEqual({ url: "http://b.example/", index: 1 })
    r.failed(1, "HTTP 503")
    r.failed(2, "reset")
    expect(r.current().index).toBe(0)
  })

  test("two calls failing on the same replica move the agent once, not there and back", () => {
    const r = createReplicas(["http://a.example", "http://b.example"])
    const { index } = r.current()
    r.failed(index, "heartbeat: refused")
    r.failed(index, "long poll: refused")
    expect(r.current().index).toBe(1)
  })

  test("one URL stays put; none is an error", () => {
    const r = createReplicas(["http://a.example"])
    r.failed(0, "refused")
    expect(r.current().index).toBe(0)
    expect(() => createReplicas([])).toThrow()
  })

  test("moved off the first, it asks the first whether it is ready, one question at a time, and goes back when it is", async () => {
    const asked: string[] = []
    let readyAgain = false
    let answering = 0
    let mostAtOnce = 0
    const r = createReplicas(["http://a.example", "http://b.example", "http://c.example"], {
      failbackMs: 20,
      ready: async (url) => {
        asked.push(url)
        mostAtOnce = Math.max(mostAtOnce, ++answering)
        await Bun.sleep(30)
        answering--
        return readyAgain
      },
    })
    // On the first: nothing to ask.
    await Bun.sleep(60)
    expect(asked).toEqual([])
    r.failed(0, "refused")
    r.failed(1, "HTTP 502")
    expect(r.current().index).toBe(2)
    await waitFor(
      "a few questions to the first replica",
      async () => asked.length,
      (n) => n >= 3,
    )
    expect(r.current().index).toBe(2)
    expect(new Set(asked)).toEqual(new Set(["http://a.example/"]))
    expect(mostAtOnce).toBe(1)
    readyAgain = true
    await waitFor(
      "back on the first replica",
      async () => r.current().index,
      (i) => i === 0,
    )
    // Back home, the questions stop.
    const count = asked.length
    await Bun.sleep(100)
    expect(asked.length).toBe(count)
    r.close()
  })

  test("failback 0 stays where a failure moved it; close() stops the questions", async () => {
    let asked = 0
    const ready = async () => {
      asked++
      return true
    }
    const stay = createReplicas(["http://a.example", "http://b.example"], { failbackMs: 0, ready })
    stay.failed(0, "refused")
    const closing = createReplicas(["http://a.example", "http://b.example"], { failbackMs: 20, ready })
    closing.failed(0, "refused")
    closing.close()
    await Bun.sleep(100)
    expect(asked).toBe(0)
    expect(stay.current().index).toBe(1)
    expect(closing.current().index).toBe(1)
  })

  test("a replica is ready only when its /api/health answers 200: not a 503, a redirect or no answer", async () => {
    let status = 503
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname === "/api/health"
          ? new Response(JSON.stringify({ status: "x" }), { status, headers: { location: "http://127.0.0.1:1/" } })
          : new Response("not found", { status: 404 }),
    })
    try {
      const url = `http://127.0.0.1:${server.port}/`
      expect(await replicaReady(url)).toBe(false)
      status = 302
      expect(await replicaReady(url)).toBe(false)
      status = 200
      expect(await replicaReady(url)).toBe(true)
      // Asked relative to the URL as given (a control plane behind a path prefix): nothing answers there.
      expect(await replicaReady(`http://127.0.0.1:${server.port}/chimera/`)).toBe(false)
    } finally {
      server.stop(true)
    }
    expect(await replicaReady(`http://127.0.0.1:${server.port}/`)).toBe(false)
  })

  test("spreadOrder: each node its own order of one list, even over the replicas, stable, and moved only to a new replica", () => {
    const two = ["https://cp-a.example", "https://cp-b.example"]
    const three = [...two, "https://cp-c.example"]
    const ids = Array.from({ length: 3000 }, (_, i) => `web-${i}`)
    const firsts = (urls: string[]) => ids.map((id) => spreadOrder(urls, id)[0] as string)
    const count = (list: string[], url: string) => list.filter((u) => u === url).length
    // A permutation of the list, the same every time for a node, whatever order the list came in.
    expect(spreadOrder(three, "web-1").sort()).toEqual([...three].sort())
    expect(spreadOrder(three, "web-1")).toEqual(spreadOrder([...three].reverse(), "web-1"))
    expect(spreadOrder(["https://cp-a.example/"], "x")).toEqual(["https://cp-a.example/"])
    // A trailing slash does not change a node's order (the agent adds one to every URL).
    expect(spreadOrder(["https://cp-a.example/", "https://cp-b.example/"], "web-7").map((u) => u.slice(0, -1))).toEqual(
      spreadOrder(two, "web-7"),
    )
    const onTwo = firsts(two)
    for (const url of two) expect(count(onTwo, url)).toBeWithin(1350, 1651)
    const onThree = firsts(three)
    for (const url of three) expect(count(onThree, url)).toBeWithin(850, 1151)
    // Adding cp-c: a node's first either stays or becomes cp-c, never the other old replica.
    const moved = onTwo.filter((first, i) => first !== onThree[i])
    expect(onThree.filter((first, i) => first !== onTwo[i]).every((u) => u === "https://cp-c.example")).toBe(true)
    expect(moved.length).toBe(count(onThree, "https://cp-c.example"))
  })
})
