// The choice of replica: sticky, moved on by a failure seen on the current replica only, wrapping round.
import { describe, expect, test } from "bun:test"
import { createReplicas } from "./replicas.ts"

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
})
