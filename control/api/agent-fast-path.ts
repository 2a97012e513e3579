// The agent fast path: 20,000 agents heartbeat, poll for commands, ack and report, and the full
// middleware chain (app.ts) costs more per request than the work itself. This middleware, mounted in
// front of the chain, answers those routes (the ones whose rules allow it, HOT below: today all but the
// command poll, whose answer is never redacted) when a request is plainly shaped: a well-formed node
// credential, a JSON body with a Content-Length within its limit, path segments that need no decoding.
// Anything else is passed on untouched, before any side effect, and the chain answers it as before.
//
// It runs the same checks, through the same functions: the request id and source (audit-trail.ts),
// the body limit (body-limits.ts), the guard's `admit` with the route's own rule (authentication, rate
// limits and headers, a node acting only as itself), Hono's 400 for malformed JSON, the same zod
// schemas and 422s (validate.ts), the same actions (agent.ts), errors through the app's one onError.
// Two middlewares of the chain it does not run, and what stands in for them:
// - the audit trail records mutating requests whose rule does not say `audit: false`, and nothing
//   before the guard refuses one of these routes except an oversized body, which is passed on; so a
//   route is taken only when its rule says `audit: false` or its method is GET (checked at start); of
//   those the trail notes only refusals of the caller (401, 403, 429), which the fast path notes too;
// - answer redaction skips routes that issue a secret and error answers; a route that issues a secret
//   is never taken, and a 200 answer is scanned by the same function as it is serialized (redactedJson).
import type { Context, MiddlewareHandler } from "hono"
import { HTTPException } from "hono/http-exception"
import type { z } from "zod"
import { CommandAck, NodeHealth, ReportBatch } from "../../protocol/agent.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import type { RateLimiter } from "../domain/auth/rate-limiter.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { ReportQuota } from "../domain/report-quota.ts"
import { tokenKind } from "../domain/tokens.ts"
import { agentActions, CommandParams, NodeParams, WaitQuery } from "./agent.ts"
import { DENIED, identify, noteRefusal } from "./audit-trail.ts"
import { type ApiEnv, internalPrincipal, type MatchedRoute } from "./auth.ts"
import { bodyLimitOf } from "./body-limits.ts"
import { type Checker, compileChecker } from "./compiled-check.ts"
import { onError } from "./errors.ts"
import { FastContext } from "./fast-context.ts"
import { admit, admitAs } from "./guard.ts"
import { checkJsonDepth } from "./json-depth.ts"
import { redactedJson } from "./redact-answers.ts"
import type { Refusals } from "./refusals.ts"
import { routeKey, ruleFor } from "./route-permissions.ts"
import { isJsonType, parseAt } from "./validate.ts"

// Matched on Hono's path (decodeURI'd, `%25` kept): segments of these characters, with no `%` left,
// are the very params the router hands the validators and the guard decodes for its node check.
const AGENT_PATH = /^\/api\/agent\/([A-Za-z0-9._-]+)\/(heartbeat|reports|commands(?:\/([A-Za-z0-9._-]+)\/ack)?)$/

type Action = "heartbeat" | "reports" | "commands" | "ack"
interface Hot {
  method: "GET" | "POST"
  key: string
  rule: NonNullable<MatchedRoute["rule"]>
}

const PATTERNS: Record<Action, [Hot["method"], string]> = {
  heartbeat: ["POST", "/api/agent/:nodeId/heartbeat"],
  reports: ["POST", "/api/agent/:nodeId/reports"],
  commands: ["GET", "/api/agent/:nodeId/commands"],
  ack: ["POST", "/api/agent/:nodeId/commands/:id/ack"],
}

/** The routes whose rules allow the skips above; a rule changed to audit or to issue a secret drops out. */
const HOT = new Map<Action, Hot>()
for (const action of Object.keys(PATTERNS) as Action[]) {
  const [method, pattern] = PATTERNS[action]
  const rule = ruleFor(method, pattern)
  if (rule?.auth !== "node" || rule.issuesSecret || rule.tokenInQuery || rule.limits?.length) continue
  if (method !== "GET" && rule.audit !== false) continue
  HOT.set(action, { method, key: routeKey(method, pattern), rule })
}

/** The bodies' schemas compiled once (compiled-check.ts): a body that passes is used as parsed; null: zod alone. */
const COMPILED = new Map<z.ZodType, Checker | null>(
  [NodeHealth, ReportBatch, CommandAck].map((schema) => [schema, compileChecker(schema)]),
)

/** The actions the fast path answers (the others go the long way); tests read it. */
export const fastActions = () => [...HOT.keys()]

export interface FastPathDeps {
  fleet: Fleet
  authenticator: Authenticator
  limiter: RateLimiter
  quota: ReportQuota
  refusals: Refusals
}

/** A request the fast path answers: its route and the params its path gives. */
export interface Plain {
  action: Action
  hot: Hot
  nodeId: string
  id: string | undefined
  /** The node credential of its `Authorization: Bearer` header. */
  credential: string
}

/**
 * The fast path's one decision, made from the request alone before anything else happens: is it
 * plainly shaped for a route in HOT (above)? `path` is Hono's (decoded) or the raw URL's path.
 */
export function plainOf(raw: Request, path: string): Plain | null {
  const m = AGENT_PATH.exec(path)
  if (!m) return null
  const [, nodeId = "", tail = "", id] = m
  const action: Action = id !== undefined ? "ack" : (tail as Action)
  const hot = HOT.get(action)
  if (!hot || raw.method !== hot.method) return null
  const auth = raw.headers.get("authorization")
  // A node credential's characters are all bearer characters: this is bearerToken's token, or none.
  const credential = auth?.startsWith("Bearer ") ? auth.slice(7) : null
  if (credential === null || tokenKind(credential) !== "node") return null
  // Whether a body came, from the headers that frame it: reading `raw.body` makes the body a stream,
  // which cost a heartbeat about 7 µs (in-process A/B), its own and the later reading of its text.
  const length = raw.headers.get("content-length")
  const chunked = raw.headers.has("transfer-encoding")
  if (hot.method === "GET") {
    if (length !== null || chunked) return null
  } else {
    const type = raw.headers.get("content-type")
    if (chunked || type === null || !isJsonType(type) || length === null) return null
    const size = Number.parseInt(length, 10)
    if (!(size > 0 && size <= bodyLimitOf(path))) return null
  }
  return { action, hot, nodeId, id, credential }
}

export type FastAnswer = (c: Context<ApiEnv>, plain: Plain) => Promise<Response>

/** Answers a plain request (plainOf) with the route's checks and action; throws its 4xx. */
export function fastAnswer({ fleet, authenticator, limiter, quota, refusals }: FastPathDeps): FastAnswer {
  const act = agentActions(fleet, quota)
  const json = async <S extends z.ZodType>(c: Context<ApiEnv>, schema: S): Promise<z.output<S>> => {
    // Parsed here from the text the depth check read: Hono's c.req.json() after c.req.text() makes a
    // new Response of the text to parse it.
    const text = await checkJsonDepth(c)
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw new HTTPException(400, { message: "Malformed JSON in request body" }) // as hono/validator says it
    }
    return COMPILED.get(schema)?.(value) ? (value as z.output<S>) : parseAt("body", schema, value)
  }

  const answer = async (c: Context<ApiEnv>, { action, hot, nodeId, id, credential }: Plain): Promise<Response> => {
    identify(c)
    const route: MatchedRoute = { key: hot.key, rule: hot.rule, params: id === undefined ? { nodeId } : { nodeId, id } }
    c.set("route", route)
    // A node credential the store knows at once is admitted without the promises of a lookup that never
    // waits (plainOf took the credential from the header); any other, as the guard does.
    const known = internalPrincipal(c) ? undefined : authenticator.knownNode(credential)
    if (known) admitAs(c, route, known, limiter)
    else await admit(c, route, authenticator, limiter)
    switch (action) {
      case "heartbeat": {
        const { nodeId: node } = parseAt("path", NodeParams, route.params)
        const health = await json(c, NodeHealth)
        const principal = c.get("principal")
        const answer = act.heldHeartbeat(principal, node, health) ?? (await act.heartbeat(principal, node, health))
        return redactedJson(c, answer)
      }
      case "reports": {
        const { nodeId: node } = parseAt("path", NodeParams, route.params)
        await act.admitReports(c, node)
        const batch = await json(c, ReportBatch)
        return redactedJson(c, await act.reports(node, batch))
      }
      case "commands": {
        const { nodeId: node } = parseAt("path", NodeParams, route.params)
        // What hono/validator hands a query schema: each key's one value, or its values when repeated.
        const given = Object.entries(c.req.queries()).map(([k, v]) => (v.length === 1 ? [k, v[0]] : [k, v]))
        const { wait } = parseAt("query", WaitQuery, Object.fromEntries(given))
        return redactedJson(c, await act.commands(node, credential, wait, c.req.raw.signal))
      }
      case "ack": {
        const params = parseAt("path", CommandParams, route.params)
        const ack = await json(c, CommandAck)
        return redactedJson(c, await act.ack(params.nodeId, params.id, ack))
      }
    }
  }
  // Errors are answered here, by the app's one onError: a refusal of the caller (401, 403, 429: a
  // credential at another node's door, a body naming another node, a report quota spent) is noted as
  // the app's audit trail notes it, since that trail never sees these requests.
  return async (c, plain) => {
    try {
      return await answer(c, plain)
    } catch (error) {
      c.res = onError(error as Error, c)
      if (DENIED.has(c.res.status)) await noteRefusal(c, refusals)
      return c.res
    }
  }
}

/** The fast path as a middleware of the app's chain, for requests that reach the app (app.ts). */
export function agentFastPath(answer: FastAnswer): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const plain = plainOf(c.req.raw, c.req.path)
    return plain ? answer(c, plain) : next()
  }
}

type AppFetch = (request: Request, server: unknown) => Response | Promise<Response>

/** The path of a request's URL as it came (no decoding), without its query. */
function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2)
  if (start === -1) return "/"
  const query = url.indexOf("?", start)
  return url.slice(start, query === -1 ? undefined : query)
}

/**
 * The server's fetch: a plain agent request (plainOf, on the URL's path as sent) is answered here,
 * before the app's router, middleware chain and per-request dispatch, through the same `measure`
 * (the request metrics middleware, metrics.ts) and the same error answers (onError) as in the app,
 * on a FastContext (fast-context.ts: the part of Hono's Context they use, without its per-request
 * closures); everything else, and any path that needs decoding, goes to the app untouched.
 */
export function agentFront(appFetch: AppFetch, answer: FastAnswer, measure: MiddlewareHandler<ApiEnv>): AppFetch {
  const answered = async (c: Context<ApiEnv>, plain: Plain) => {
    await measure(c, async () => {
      try {
        c.res = await answer(c, plain)
      } catch (error) {
        c.res = onError(error as Error, c)
      }
    })
    return c.res
  }
  return (request, server) => {
    const path = rawPath(request.url)
    const plain = path.startsWith("/api/agent/") ? plainOf(request, path) : null
    if (!plain) return appFetch(request, server)
    return answered(new FastContext(request, server, path).asContext(), plain)
  }
}
