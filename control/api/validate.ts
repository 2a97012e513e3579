// Parse at the edge: a JSON body, query or path parameter is checked against its zod schema before a
// handler sees it. Bad JSON is a 400, a schema violation a 422 whose detail lists each field's path.
import type { Context } from "hono"
import { validator } from "hono/validator"
import { z } from "zod"
import { ChimeraError } from "../domain/errors.ts"
import { checkJsonDepth } from "./json-depth.ts"

export function issuesOf(error: z.ZodError) {
  return error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join(".") || "(root)", message: i.message }))
}

function fail(where: string, error: z.ZodError): never {
  const issues = issuesOf(error)
  const first = issues[0]
  const summary = first
    ? `${where}${first.path === "(root)" ? "" : `.${first.path}`}: ${first.message}`
    : `${where} is invalid`
  throw new ChimeraError("VALIDATION_FAILED", summary, { issues })
}

/** A query parameter that is on or off: `true` or `1`, `false` or `0` (`?tail=true`). */
export const QueryFlag = z
  .enum(["true", "false", "1", "0"], { message: "expected true or false" })
  .transform((v) => v === "true" || v === "1")

/** `value` checked against `schema`, or the 422 that names where (`body`, `query`, `path`) and each field. */
export function parseAt<S extends z.ZodType>(where: string, schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) fail(where, parsed.error)
  return parsed.data as z.output<S>
}

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i
/** A Content-Type that says JSON (the same test Hono's json validator makes before it parses). */
export const isJsonType = (type: string) => JSON_TYPE.test(type.split(";")[0]?.trim() ?? "")

// Hono has already parsed a body sent as application/json (a malformed one is its 400). Anything else,
// a missing Content-Type included, is a 415: a body is read as JSON only when its sender says it is,
// so a form post or a stray `curl -d` never becomes an action by accident.
function readJson(c: Context, parsed: unknown): unknown {
  const type = c.req.header("content-type")
  if (type !== undefined && isJsonType(type)) return parsed
  const got = type === undefined || type.trim() === "" ? "no Content-Type" : JSON.stringify(type.slice(0, 100))
  throw new ChimeraError(
    "UNSUPPORTED_MEDIA_TYPE",
    `expected a JSON body with Content-Type: application/json (a charset may follow), got ${got}`,
  )
}

/** The body parsed as JSON and checked against `schema`; its nesting depth is checked before it is parsed. */
export const jsonBody = <S extends z.ZodType>(schema: S) => {
  const validate = validator("json", (value, c) => parseAt("body", schema, readJson(c, value)))
  const checked: typeof validate = async (c, next) => {
    const type = c.req.header("content-type")
    if (type !== undefined && isJsonType(type)) await checkJsonDepth(c)
    return validate(c, next)
  }
  return checked
}

/**
 * As jsonBody, for a route whose body is optional: a request with none reads as `{}`, whatever its
 * Content-Type says (a client whose every request says application/json sends its bodiless POST so);
 * one with a body is held to jsonBody's rules.
 */
export const optionalJsonBody = <S extends z.ZodType>(schema: S) => {
  const withBody = jsonBody(schema)
  const checked: typeof withBody = async (c, next) => {
    if (c.req.raw.body !== null && c.req.header("content-length") !== "0") return withBody(c, next)
    // Set as Hono's validator sets it: that one would parse the missing body when the type says JSON.
    c.req.addValidatedData("json", parseAt("body", schema, {}) as object)
    await next()
  }
  return checked
}

/**
 * A query or path value holding a NUL (`?node=a%00`) is refused whatever the schema: PostgreSQL's TEXT
 * refuses NUL, so the store's look-up failed as a 500 where SQLite found nothing.
 */
function refuseNul(where: string, value: Record<string, unknown>): void {
  for (const [key, v] of Object.entries(value)) {
    if (![v].flat().some((s) => typeof s === "string" && s.includes("\0"))) continue
    const message = "a NUL byte is not allowed"
    throw new ChimeraError("VALIDATION_FAILED", `${where}.${key}: ${message}`, { issues: [{ path: key, message }] })
  }
}

export const query = <S extends z.ZodType>(schema: S) =>
  validator("query", (value) => {
    refuseNul("query", value)
    return parseAt("query", schema, value)
  })

export const params = <S extends z.ZodType>(schema: S) =>
  validator("param", (value) => {
    refuseNul("path", value)
    return parseAt("path", schema, value)
  })
