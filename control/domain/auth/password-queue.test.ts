// The password-check queue's fairness rules, with work the test finishes by hand so that the order
// checks start in is seen exactly: one address cannot hold more than its share, trusted sources go
// first and suspect ones last, a clean address's second check waits as suspect, and a newcomer takes a
// full queue's newest place in a lane below its own.
import { describe, expect, test } from "bun:test"
import type { ChimeraError } from "../errors.ts"
import { createCheckQueue, type Standing } from "./password-queue.ts"

function harness(limits = { parallel: 1, waiting: 4, perSource: 2 }) {
  const queue = createCheckQueue(limits)
  const started: string[] = []
  const finishers: (() => void)[] = []
  const outcomes = new Map<string, string>()
  const submit = (name: string, source: string | null, standing: Standing = "clean") => {
    const done = queue.run({ source, standing }, () => {
      started.push(name)
      return new Promise<void>((resolve) => finishers.push(resolve))
    })
    done.then(
      () => outcomes.set(name, "ok"),
      (e: ChimeraError) => outcomes.set(name, e.code),
    )
    return done.catch(() => {})
  }
  /** Finishes the running check and lets the next one start. */
  const finishOne = async () => {
    finishers.shift()?.()
    await Bun.sleep(0)
    await Bun.sleep(0)
  }
  return { queue, started, outcomes, submit, finishOne }
}

describe("password check queue", () => {
  test("an address holds at most its share of waiting checks; the rest are refused at once", async () => {
    const h = harness()
    void h.submit("a1", "a", "trusted")
    for (const n of ["a2", "a3", "a4"]) void h.submit(n, "a", "trusted")
    await Bun.sleep(0)
    expect(h.outcomes.get("a4")).toBe("RESOURCE_EXHAUSTED")
    expect(h.queue.waiting()).toBe(2)
    void h.submit("b1", "b")
    expect(h.queue.waiting()).toBe(3)
  })

  test("trusted sources go first, suspect ones last, whatever the arrival order", async () => {
    const h = harness({ parallel: 1, waiting: 10, perSource: 2 })
    void h.submit("running", "x")
    void h.submit("s1", "s", "suspect")
    void h.submit("c1", "c")
    void h.submit("c2", "c") // a clean address's second check waits as a suspect's
    void h.submit("t1", "t", "suspect")
    void h.submit("r1", "r", "trusted")
    for (let i = 0; i < 5; i++) await h.finishOne()
    expect(h.started).toEqual(["running", "r1", "c1", "s1", "c2", "t1"])
  })

  test("a newcomer takes a full queue's newest place in a lane below its own; a suspect one is refused", async () => {
    const h = harness()
    void h.submit("running", "x")
    for (const [n, s] of [
      ["s1", "s"],
      ["t1", "t"],
      ["u1", "u"],
      ["v1", "v"],
    ] as const)
      void h.submit(n, s, "suspect")
    void h.submit("w1", "w", "suspect")
    await Bun.sleep(0)
    expect(h.outcomes.get("w1")).toBe("RESOURCE_EXHAUSTED")
    void h.submit("fresh", "f")
    await Bun.sleep(0)
    expect(h.outcomes.get("v1")).toBe("RESOURCE_EXHAUSTED")
    // Clean ones take the suspects' places; trusted ones take the last suspect's, then a clean one's.
    void h.submit("c1", "c")
    void h.submit("c2", "d")
    void h.submit("back", "b", "trusted")
    void h.submit("back2", "b2", "trusted")
    await Bun.sleep(0)
    expect(["u1", "t1", "s1", "c2"].map((n) => h.outcomes.get(n))).toEqual(Array(4).fill("RESOURCE_EXHAUSTED"))
    await h.finishOne()
    await h.finishOne()
    await h.finishOne()
    expect(h.started).toEqual(["running", "back", "back2", "fresh"])
  })

  test("the control plane's own checks (no source) are never capped", async () => {
    const h = harness()
    for (let i = 0; i < 10; i++) void h.submit(`own${i}`, null)
    await Bun.sleep(0)
    expect([...h.outcomes.values()]).toEqual([])
    expect(h.queue.waiting()).toBe(9)
  })
})
