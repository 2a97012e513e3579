// Secrets stay out of API answers by construction (views carry no hashes or tokens), and this is the
// serializer-level net under that: a JSON answer of a route that does not issue a secret is scanned
// and anything that looks like one (a chm_ token, a JWT, a password hash) is replaced. Routes that
// hand the caller its own new secret (login, token creation, enrolment) say so in their rule.
import type { Context, MiddlewareHandler } from "hono"
import { looksSecretInJson, redactStrings, redactText } from "../../protocol/log.ts"
import type { ApiEnv } from "./auth.ts"

export const redactAnswers: MiddlewareHandler<ApiEnv> = async (c, next) => {
  await next()
  // Error bodies were redacted when errorResponse built them.
  if (c.get("route")?.rule?.issuesSecret || c.res.status >= 400) return
  if (!c.res.headers.get("content-type")?.startsWith("application/json") || !c.res.body) return
  const text = await c.res.clone().text()
  if (!looksSecretInJson(text)) return
  let redacted: string
  try {
    redacted = JSON.stringify(redactStrings(JSON.parse(text)))
  } catch {
    redacted = redactText(text) // not JSON after all: no structure to keep
  }
  c.res = new Response(redacted, { status: c.res.status, headers: c.res.headers })
  c.res.headers.delete("content-length")
}

/**
 * A 200 JSON answer put through the same net as it is serialized, for a route whose rule issues no
 * secret and which this middleware does not wrap (the agent fast path, agent-fast-path.ts): the text
 * is scanned once as it is made instead of read back from the answer.
 */
export function redactedJson(c: Context, value: unknown): Response {
  return c.body(redactedJsonText(value), 200, { "Content-Type": "application/json" })
}

/**
 * `value` serialized with the same net: what a streamed frame carries (the event stream's `data`),
 * which no middleware sees once the stream's headers are sent.
 */
export function redactedJsonText(value: unknown): string {
  const text = JSON.stringify(value)
  return looksSecretInJson(text) ? JSON.stringify(redactStrings(value)) : text
}
