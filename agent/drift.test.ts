import { describe, expect, test } from "bun:test"
import type { SystemLinks } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { classifyDrift, driftChanged, driftPhase } from "./drift.ts"

const gen1 = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-system-1" as StorePath
const gen2 = "/nix/store/zyxwvsrqpnmlkjihgfdcba9876543210-system-2" as StorePath
const links = (profile: StorePath | null, current: StorePath | null, booted: StorePath | null): SystemLinks => ({
  profile,
  current,
  booted,
})

describe("classifyDrift", () => {
  test("a node on its desired closure everywhere is congruent", () => {
    const s = classifyDrift(gen1, links(gen1, gen1, gen1), true)
    expect(s).toEqual({ kinds: [], congruent: true, rebootRequired: false })
    expect(driftPhase(s)).toBe("congruent")
  })

  test("a switched generation (profile and current moved) is profile and runtime drift", () => {
    const s = classifyDrift(gen1, links(gen2, gen2, gen1), true)
    expect(s.kinds).toEqual(["profile-drift", "runtime-drift"])
    expect(s.congruent).toBe(false)
    expect(driftPhase(s)).toBe("drifted")
  })

  test("`switch-to-configuration test` (only current moved) is runtime drift", () => {
    expect(classifyDrift(gen1, links(gen1, gen2, gen1), true).kinds).toEqual(["runtime-drift"])
  })

  test("a new generation set but not activated (only profile moved) is profile drift", () => {
    expect(classifyDrift(gen1, links(gen2, gen1, gen1), true).kinds).toEqual(["profile-drift"])
  })

  test("absent links count as drift", () => {
    expect(classifyDrift(gen1, links(null, null, null), true).kinds).toEqual(["profile-drift", "runtime-drift"])
  })

  test("a desired closure not in the store is a missing closure", () => {
    const s = classifyDrift(gen2, links(gen1, gen1, gen1), false)
    expect(s.kinds).toEqual(["profile-drift", "runtime-drift", "missing-closure"])
    expect(driftPhase(s)).toBe("missing-closure")
  })

  test("reboot is required when the desired system runs but another one was booted", () => {
    const s = classifyDrift(gen2, links(gen2, gen2, gen1), true)
    expect(s.congruent).toBe(true)
    expect(s.rebootRequired).toBe(true)
  })

  test("no reboot is asked for while the node drifts, healing fixes that", () => {
    expect(classifyDrift(gen1, links(gen2, gen2, gen1), true).rebootRequired).toBe(false)
  })

  test("without a desired closure only the reboot check applies", () => {
    expect(classifyDrift(null, links(gen2, gen2, gen1), false)).toEqual({
      kinds: [],
      congruent: true,
      rebootRequired: true,
    })
    expect(classifyDrift(null, links(gen2, gen2, null), false).rebootRequired).toBe(false)
  })
})

describe("driftChanged", () => {
  test("is true only when the reported kinds change", () => {
    const a = classifyDrift(gen1, links(gen2, gen2, gen1), true)
    const b = classifyDrift(gen1, links(gen2, gen2, gen2), true)
    const c = classifyDrift(gen1, links(gen1, gen2, gen1), true)
    const ok = classifyDrift(gen1, links(gen1, gen1, gen1), true)
    expect(driftChanged(null, a)).toBe(true)
    expect(driftChanged(a, b)).toBe(false)
    expect(driftChanged(a, c)).toBe(true)
    expect(driftChanged(c, ok)).toBe(true)
    expect(driftChanged(null, ok)).toBe(false)
  })
})
