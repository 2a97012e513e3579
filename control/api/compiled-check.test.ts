// The compiled checker against zod itself: on every value, `true` only where zod accepts the value and
// answers with an equal one, and `true` wherever that holds (so the fast path is taken for every good
// heartbeat). The values are a valid heartbeat with each field, at every depth, replaced by each of a
// list of awkward values, removed, or joined by an unknown key.
import { describe, expect, test } from "bun:test"
import { z } from "zod"
import { CommandAck, EnrollRequest, NodeHealth, ReportBatch } from "../../protocol/agent.ts"
import { heartbeatBody } from "../../tests/support/auth.ts"
import { WaitQuery } from "./agent.ts"
import { compileChecker } from "./compiled-check.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
/** A valid heartbeat with a fractional uptime and load, large integers, and a missing link. */
const heartbeat = () => ({
  ...heartbeatBody("web-1"),
  agentVersion: "0.4.1",
  hostname: "web-1.example",
  at: "2026-12-06T12:00:00.123Z",
  uptimeSeconds: 1234.5,
  load: [0.1, 0.05, 0],
  memory: { totalBytes: 8_000_000_000, availableBytes: 6_000_000_000 },
  system: { profile: GEN, current: GEN, booted: null },
})

const AWKWARD: unknown[] = [
  null,
  undefined,
  true,
  false,
  0,
  -0,
  -1,
  1,
  1.5,
  -1.5,
  2 ** 53 - 1,
  2 ** 53 + 2,
  Number.MAX_VALUE,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  86_400,
  86_400.5,
  "",
  "a",
  "x".repeat(63),
  "x".repeat(64),
  "x".repeat(255),
  "x".repeat(256),
  "x".repeat(5000),
  "a\u0007b",
  "a\u200bb",
  "😀".repeat(150),
  "😀".repeat(256),
  "0.4.1",
  "-bad",
  GEN,
  `${GEN}\n`,
  "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x",
  `/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-${"a".repeat(300)}`,
  "2026-12-06T12:00:00Z",
  "2026-12-06T12:00:00+01:00",
  "2026-13-06T12:00:00Z",
  "2026-12-06",
  "congruent",
  "heal-failed",
  "Congruent",
  [],
  [1, 2, 3],
  [0.1, 0.05],
  [0.1, 0.05, 0, 0],
  [0.1, -0.05, 0],
  ["0.1", 0.05, 0],
  {},
  { totalBytes: 1, availableBytes: 1 },
  { path: "/", totalBytes: 1, freeBytes: 1 },
  { profile: null, current: null, booted: null },
]

type Json = Record<string, unknown> | unknown[]
/** Every way of changing one place in `value`: each field replaced, removed, or an unknown key added. */
function* variants(value: Json): Generator<unknown> {
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value)
  const copy = () => structuredClone(value) as Record<string | number, unknown>
  for (const k of keys) {
    for (const awkward of AWKWARD) {
      const c = copy()
      c[k] = awkward
      yield c
    }
    const removed = copy()
    if (Array.isArray(removed)) removed.splice(k as number, 1)
    else delete removed[k]
    yield removed
    const inner = (value as Record<string | number, unknown>)[k]
    if (inner !== null && typeof inner === "object") {
      for (const changed of variants(inner as Json)) {
        const c = copy()
        c[k] = changed
        yield c
      }
    }
  }
  if (!Array.isArray(value)) {
    yield { ...copy(), extra: 1 }
    yield JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(value).slice(1)}`)
    yield Object.assign(Object.create({ inherited: 1 }), value)
  }
}

/** The checker says yes exactly when zod accepts the value as it is. */
function agrees(schema: z.ZodType, check: (v: unknown) => boolean, value: unknown): void {
  const parsed = schema.safeParse(value)
  const unchanged = parsed.success && Bun.deepEquals(parsed.data, value, true)
  if (check(value) !== unchanged) throw new Error(`checker ${check(value)}, zod ${unchanged}: ${Bun.inspect(value)}`)
}

describe("compiled checker", () => {
  test("agrees with zod on NodeHealth and over a thousand altered heartbeats", () => {
    const check = compileChecker(NodeHealth)
    if (!check) throw new Error("NodeHealth must compile")
    expect(check(heartbeat())).toBe(true)
    let n = 0
    for (const value of variants(heartbeat())) {
      agrees(NodeHealth, check, value)
      n++
    }
    for (const value of [null, undefined, "x", 1, [], [heartbeat()]]) agrees(NodeHealth, check, value)
    expect(n).toBeGreaterThan(1000)
  })

  test("a heartbeat as the agent sends it (JSON text) passes both", () => {
    const check = compileChecker(NodeHealth)
    const value = JSON.parse(JSON.stringify({ ...heartbeat(), system: { profile: GEN, current: GEN, booted: GEN } }))
    expect(check?.(value)).toBe(true)
    expect(NodeHealth.parse(value)).toEqual(value)
  })

  test("a value that failed a check leaves nothing behind for the next one", () => {
    const check = compileChecker(z.object({ a: z.string().max(3), b: z.number().int() }))
    if (!check) throw new Error("must compile")
    for (let i = 0; i < 3; i++) {
      expect(check({ a: "toolong", b: 1 })).toBe(false) // a check that adds an issue
      expect(check({ a: "ok", b: 1 })).toBe(true)
      expect(check({ a: "ok", b: 1.5 })).toBe(false)
      expect(check({ a: "ok", b: 2 })).toBe(true)
    }
  })

  test("each kind of part it compiles, against zod", () => {
    const schemas = [
      z.string().min(2).max(3),
      z.string().length(2),
      z.string().regex(/^a+$/),
      z.string().refine((s) => s !== "aa"),
      z.number().int().min(-2).max(2),
      z.number().positive().multipleOf(0.5),
      z.boolean(),
      z.enum(["a", "b"]),
      z.literal("a"),
      z.iso.datetime({ offset: true }),
      z.tuple([z.number(), z.string()]),
      z.object({ a: z.number().nullable() }),
      z.object({ a: z.string() }).strict(),
      z.object({ a: z.object({ b: z.boolean() }) }).refine((o) => o.a.b),
    ]
    const values: unknown[] = [...AWKWARD, "aa", "aaa", "ab", "b", 0.5, 2, 3, { a: 1 }, { a: null }, { a: "x" }]
    values.push({ a: "x", b: 1 }, { a: { b: true } }, { a: { b: false } }, { a: { b: true, c: 1 } }, [1, "a"], [1, 2])
    for (const schema of schemas) {
      const check = compileChecker(schema)
      if (!check) throw new Error(`${schema.def.type} must compile`)
      for (const value of values) agrees(schema, check, value)
    }
  })

  test("a schema that can change what it parses, or has optional parts, is left to zod", () => {
    for (const schema of [
      CommandAck,
      EnrollRequest,
      ReportBatch,
      WaitQuery,
      z.string().trim(),
      z.string().default("x"),
      z.string().transform((s) => s.length),
      z.object({ a: z.string() }).passthrough(),
      z.union([z.string(), z.number()]),
      z.tuple([z.string()], z.number()),
      // zod still wants the key present, whatever its value may be
      z.object({ a: z.literal([undefined, "x"]) }),
      z.object({ a: z.string(), [Symbol("b")]: z.string() }),
    ])
      expect(compileChecker(schema)).toBeNull()
  })
})
