// A zod schema compiled to one straight-line function that says whether a value passes it unchanged,
// for the request bodies every agent sends (the agent fast path, agent-fast-path.ts). zod's own parse
// walks a schema through functions every schema of the app shares, whose call sites see dozens of
// shapes: a heartbeat's NodeHealth took 4.9-5.9 µs to parse in the running control plane against 2.1
// µs in a process that parses nothing else. The compiled function has call sites of its own, one per
// field and check, and allocates nothing on success.
//
// It decides nothing zod does not: it runs zod's own check functions (the regexes, lengths, bounds and
// refinements of each field) on a reused payload, and repeats zod's parse only where that is a type
// test (string, number, boolean, enum, literal, null, array length, object keys). It answers `true`
// only when zod would accept the value and hand back one equal to it (no coercion, default, transform
// or stripped key; its keys keep the sender's order, where zod's answer has the schema's), so the
// caller may use the value as parsed; on `false` the caller asks zod, which gives the error (or, for a
// value this function is unsure of, the value). A schema with any part it does not know compiles to
// null, and is parsed by zod alone. compiled-check.test.ts compares it with zod on over a thousand
// altered bodies.
import type { z } from "zod"

/** Whether `value` passes the schema unchanged. */
export type Checker = (value: unknown) => boolean

interface Internals {
  def: { type: string; checks?: unknown[]; coerce?: boolean; when?: unknown; check?: string } & Record<string, unknown>
  traits: Set<string>
  optin?: unknown
  values?: Set<unknown>
}
const internals = (schema: unknown): Internals => (schema as { _zod: Internals })._zod

/** zod's checks that only look at the value and add an issue; `overwrite` (trim, toLowerCase) changes it. */
const CHECKS = new Set([
  "less_than",
  "greater_than",
  "multiple_of",
  "number_format",
  "max_length",
  "min_length",
  "length_equals",
  "string_format",
  "custom",
])

class Unsupported extends Error {}

/** The checker for `schema`, or null when a part of it is not one this compiles (zod then parses alone). */
export function compileChecker(schema: z.ZodType): Checker | null {
  const refs: unknown[] = []
  const ref = (x: unknown) => `R[${refs.push(x) - 1}]`
  const lines: string[] = []
  let vars = 0
  const local = (expr: string) => {
    const name = `v${++vars}`
    lines.push(`const ${name} = ${expr};`)
    return name
  }

  /** zod's runChecks for one value, stopping at the first issue, a promise or a changed value. */
  const checks = (zod: Internals, v: string) => {
    const all = [...(zod.traits.has("$ZodCheck") ? [{ _zod: zod }] : []), ...(zod.def.checks ?? [])]
    for (const check of all) {
      const c = internals(check)
      if (!CHECKS.has(String(c.def.check)) || typeof (c as { check?: unknown }).check !== "function")
        throw new Unsupported(`check ${c.def.check}`)
      const run = `{ const r = ${ref(c)}.check(P); if (r instanceof Promise || P.issues.length !== 0 || P.value !== ${v}) return false; }`
      lines.push(`P.value = ${v};`)
      lines.push(typeof c.def.when === "function" ? `if (${ref(c.def.when)}(P)) ${run}` : run)
    }
  }

  const emit = (s: unknown, v: string): void => {
    const zod = internals(s)
    const def = zod.def
    if (def.coerce) throw new Unsupported("coercion")
    switch (def.type) {
      case "string":
        lines.push(`if (typeof ${v} !== "string") return false;`)
        break
      case "number":
        lines.push(`if (typeof ${v} !== "number" || !Number.isFinite(${v})) return false;`)
        break
      case "boolean":
        lines.push(`if (typeof ${v} !== "boolean") return false;`)
        break
      case "enum":
      case "literal":
        // A required key whose value may be undefined is still an error when absent: zod's to say.
        if (!(zod.values instanceof Set) || zod.values.has(undefined)) throw new Unsupported(def.type)
        lines.push(`if (!${ref(zod.values)}.has(${v})) return false;`)
        break
      case "nullable": {
        if (def.checks?.length) throw new Unsupported("checks on a nullable")
        lines.push(`if (${v} !== null) {`)
        emit(def.innerType, v)
        lines.push("}")
        return
      }
      case "tuple": {
        const items = def.items as unknown[]
        if (def.rest || items.some((item) => internals(item).optin !== undefined)) throw new Unsupported("tuple")
        lines.push(`if (!Array.isArray(${v}) || ${v}.length !== ${items.length}) return false;`)
        for (const [i, item] of items.entries()) emit(item, local(`${v}[${i}]`))
        break
      }
      case "object": {
        const catchall = def.catchall === undefined ? "strip" : internals(def.catchall).def.type
        if (catchall !== "strip" && catchall !== "never") throw new Unsupported(`catchall ${catchall}`)
        const shape = def.shape as Record<string, unknown>
        const keys = Object.keys(shape)
        if (keys.includes("__proto__") || keys.some((k) => internals(shape[k]).optin !== undefined))
          throw new Unsupported("optional or __proto__ key")
        if (Object.getOwnPropertySymbols(shape).length > 0) throw new Unsupported("symbol key")
        // An unknown key is an error (strict) or is dropped from zod's answer (strip): either way, ask zod.
        lines.push(`if (typeof ${v} !== "object" || ${v} === null || Array.isArray(${v})) return false;`)
        lines.push(`for (const k in ${v}) if (!${ref(new Set(keys))}.has(k)) return false;`)
        for (const k of keys) emit(shape[k], local(`${v}[${JSON.stringify(k)}]`))
        break
      }
      default:
        throw new Unsupported(def.type)
    }
    checks(zod, v)
  }

  try {
    emit(schema, "v0")
  } catch (error) {
    if (error instanceof Unsupported) return null
    throw error
  }
  // A check that failed left its issues in P: the next call starts with none. Only then is `issues` set:
  // a write of an array's length, once per check, made the runtime rebuild that store's inline cache
  // after each garbage collection (about 1,500 times a second at 7,000 heartbeats a second).
  const body = `const P = { value: undefined, issues: [] };\nreturn (v0) => {\nif (P.issues.length !== 0) P.issues = [];\n${lines.join("\n")}\nreturn true;\n};`
  try {
    return new Function("R", body)(refs) as Checker
  } catch {
    return null // a runtime that forbids making code (zod then runs without its own compiled parsers too)
  }
}
