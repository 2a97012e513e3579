// The request's identity and its audit row. Every request gets a request id (a new UUID, echoed back
// as X-Request-Id) and its source address (the socket's; X-Forwarded-For is not trusted). Every
// mutating request (POST, PUT, PATCH, DELETE) is recorded, whatever its answer; routes whose rule says
// `audit: false`, and reads, only when refused for their credential, permission or rate limit (401,
// 403, 429).
//
// An admitted request's row is written before its action runs (`auditBeforeAction`, which the guard
// calls once it has admitted a credential, and the login calls once the password is right); when that
// write fails the action is refused with 503 and nothing happens. Its outcome is appended after the
// answer. A request refused before any action (401, 403, 429, a bad body from nobody in particular) is
// handed to the refusal counter (refusals.ts), which writes one row for the first of a window and a
// summary for the rest. A row carries a bounded summary of the body (a few scalar fields, redacted),
// never the body itself.
import { randomUUID } from "node:crypto"
import type { Context, MiddlewareHandler } from "hono"
import { ANONYMOUS_ACTOR, type Audit, type AuditTicket, resultOf } from "../domain/auth/audit.ts"
import { shownUsername } from "../domain/auth/sessions.ts"
import { type ApiEnv, internalPrincipal, type MatchedRoute } from "./auth.ts"
import { excessDepth } from "./json-depth.ts"
import type { Refusals } from "./refusals.ts"

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"])
/** A row written after its request (none should be) summarises a body up to this size, no larger. */
const MAX_READ_BODY = 16 * 1024
/** A refused request's body is read only for a typed username or node id: a flood's pads are skipped. */
const MAX_READ_REFUSED = 2 * 1024
/** A row keeps at most this many of the body's top-level fields, each cut to MAX_FIELD characters. */
const MAX_FIELDS = 8
const MAX_FIELD = 64

type BunServer = { requestIP?: (request: Request) => { address: string } | null }

/**
 * The caller's address, asked of the socket the first time someone needs it (a refusal's rate-limit
 * key, an audit row, a login) and kept for the rest of the request: Bun's requestIP costs about 5 µs,
 * a twentieth of a heartbeat, and most agent requests never need it.
 */
export function sourceOf(c: Context<ApiEnv>): string | null {
  const known = c.get("source") as string | null | undefined
  if (known !== undefined) return known
  let address: string | null = null
  try {
    address = (c.env as BunServer | undefined)?.requestIP?.(c.req.raw)?.address ?? null
  } catch {}
  c.set("source", address)
  return address
}

/**
 * The body as JSON when it is an object. `maxBytes` bounds what is read for a refused request, which
 * needs a Content-Length; a request about to act (`whole`) is read however it is framed, padded or
 * chunked, within the route's body limit (body-limits.ts, after the guard), so that no body can keep
 * its command out of the row.
 */
async function bodyOf(c: Context, maxBytes: number | "whole"): Promise<Record<string, unknown> | null> {
  if (maxBytes !== "whole") {
    const length = Number(c.req.header("content-length") ?? Number.NaN)
    if (!(length > 0) || length > maxBytes) return null
  }
  try {
    // Parsed only past the depth check the route's validator makes (json-depth.ts): a megabyte of `[`
    // would otherwise cost the parser far more than its bytes here, before the route refuses it.
    const text = await c.req.text()
    if (excessDepth(text) > 0) return null
    const body: unknown = JSON.parse(text)
    return body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : null
  } catch {
    return null // not JSON: nothing is kept, since raw text could hold a secret under no name at all
  }
}

/**
 * What a row keeps of a body: its first few top-level fields, scalars cut short and nested values only
 * named by kind. The audit log's `redact` then masks secret-named fields and secret-shaped values.
 */
export function bodySummary(body: Record<string, unknown> | null): Record<string, unknown> | null {
  if (body === null) return null
  const keys = Object.keys(body)
  const out: Record<string, unknown> = {}
  for (const key of keys.slice(0, MAX_FIELDS)) {
    const v = body[key]
    const name = key.slice(0, MAX_FIELD)
    if (typeof v === "string") out[name] = v.length > MAX_FIELD ? `${v.slice(0, MAX_FIELD)}…` : v
    else if (typeof v === "number" || typeof v === "boolean" || v === null) out[name] = v
    else out[name] = Array.isArray(v) ? `[${v.length} items]` : "[object]"
  }
  if (keys.length > MAX_FIELDS) out["…"] = `${keys.length - MAX_FIELDS} more fields`
  return out
}

/** The node an action was about: the path's, the body's, or the one a command ran on (its session's). */
function nodeOf(
  route: MatchedRoute | null | undefined,
  body: Record<string, unknown> | null,
  outcome: Record<string, unknown> | undefined,
): string | null {
  // `:id` is a node's only under /api/nodes/; elsewhere it is an incident's, a token's, a chat's or a
  // command's, and `chimera audit --node` would file the action under a node named by that id.
  const pathNode = route?.key.includes(" /api/nodes/:id") ? route.params.id : undefined
  const named = [pathNode, route?.params.nodeId, body?.nodeId, body?.node, outcome?.node]
  // A refused request's body may hold anything: only a name shaped like a node id is kept.
  return (named.find((n) => typeof n === "string" && NODE_NAME.test(n)) as string | undefined) ?? null
}

/**
 * The request's id (echoed back as X-Request-Id); the agent fast path sets it too. Always this
 * server's own, never the caller's X-Request-Id: an audit row's id must name one request, and a
 * caller who chose it could give its rows the id of another principal's (as an edge proxy such as
 * Envoy resets an outside request's id by default). A client correlates by the id it is answered with.
 */
export function identify(c: Context<ApiEnv>): string {
  const requestId = randomUUID()
  c.set("requestId", requestId)
  c.header("X-Request-Id", requestId)
  return requestId
}

/** The door a request came through when a Chimera client says so (`X-Chimera-Via: mcp`), for the audit row. */
const VIA = new Set(["mcp", "chat", "rpc", "dashboard", "cli"])
function viaOf(c: Context<ApiEnv>): Record<string, unknown> {
  const via = c.req.header("x-chimera-via")
  if (via === undefined || !VIA.has(via)) return {}
  // An action a chat proposed: which chat and model proposed it; the row's actor is who approved it.
  // Only the chat itself (in-process) may say so: from a socket the door itself would be a claim that
  // a model, not the caller, chose the action, so it is not recorded at all.
  if (via !== "chat") return { via }
  if (internalPrincipal(c) === null) return {}
  const chat = c.req.header("x-chimera-chat") ?? ""
  const model = c.req.header("x-chimera-model") ?? ""
  return {
    via,
    ...(/^\d{1,16}$/.test(chat) ? { chat: Number(chat) } : {}),
    ...(/^[\x21-\x7e]{1,200}$/.test(model) ? { model } : {}),
  }
}

/** The `code` of an error answer, to say in the row why it was refused. */
async function errorCodeOf(res: Response): Promise<string | undefined> {
  if (!res.headers.get("content-type")?.includes("json")) return undefined
  const body: unknown = await res
    .clone()
    .json()
    .catch(() => null)
  const code = body !== null && typeof body === "object" ? (body as { code?: unknown }).code : undefined
  return typeof code === "string" ? code.slice(0, 40) : undefined
}

type Trail = { audit: Audit; refusals: Refusals; ticket?: AuditTicket; body?: Record<string, unknown> | null }
const TRAIL = new WeakMap<Context, Trail>()

/** The request's body summary, its actor as shown, and any username typed into it. */
async function described(c: Context<ApiEnv>, trail: Pick<Trail, "body">, maxBytes: number | "whole" = MAX_READ_BODY) {
  trail.body ??= await bodyOf(c, maxBytes)
  const raw = trail.body
  // Only a name shaped like a username is kept: a password typed into that field must not reach the
  // audit log, as the actor or in the details.
  const typed = typeof raw?.username === "string" ? shownUsername(raw.username) : null
  const body = bodySummary(typed === null ? raw : { ...raw, username: typed })
  const attempted = typed === null || typed !== raw?.username ? ANONYMOUS_ACTOR : `login:${typed}`
  const principal = c.get("principal")
  const route = c.get("route")
  return {
    body,
    typed,
    row: {
      requestId: c.get("requestId"),
      actor: principal ? (principal.kind === "node" ? `node:${principal.nodeId}` : principal.name) : attempted,
      role: principal ? (principal.kind === "node" ? "node" : principal.role) : null,
      source: sourceOf(c),
      method: c.req.method,
      path: c.req.path,
      action: route?.key ?? `${c.req.method} (no route)`,
    },
  }
}

/**
 * Writes the row of the action this request is about to perform, when it is one the audit log records.
 * Throws AUDIT_UNAVAILABLE (503) when the row cannot be stored: the caller must not go on.
 */
export async function auditBeforeAction(c: Context<ApiEnv>): Promise<void> {
  const trail = TRAIL.get(c)
  const route = c.get("route")
  if (!trail || trail.ticket || !MUTATING.has(c.req.method) || !route?.rule || route.rule.audit === false) return
  const { body, row } = await described(c, trail, "whole")
  const via = viaOf(c)
  trail.ticket = await trail.audit.begin({
    ...row,
    nodeId: nodeOf(route, body, undefined),
    command: typeof trail.body?.command === "string" ? trail.body.command : null,
    detail: via.via ? { ...body, ...via } : body,
  })
}

/** Refusals of who the caller is or what it may do, noted on every route, read-only or not logged. */
export const DENIED = new Set([401, 403, 429])

/**
 * Hands a refused request to the refusal counter: its row (the first of its window) or its share of a
 * summary. `trail` carries a body already read, if any.
 */
export async function noteRefusal(c: Context<ApiEnv>, refusals: Refusals, trail: Pick<Trail, "body"> = {}) {
  const status = c.res.status
  const { body, typed, row } = await described(c, trail, MAX_READ_REFUSED)
  const code = await errorCodeOf(c.res)
  await refusals.note({
    ...row,
    nodeId: nodeOf(c.get("route"), body, undefined),
    status,
    result: resultOf(status),
    ...(typed === null ? {} : { username: typed }),
    ...(code === undefined ? {} : { code }),
  })
}

/**
 * Audits the requests under it: a mutating action's row (written before it by auditBefore) gets its
 * outcome; a refused one goes to the refusal counter. A read, or a route its rule keeps out of the
 * log (agent telemetry), is noted only when refused for its credential, permission or rate limit:
 * someone knocking with a made-up token, or a node's credential at another node's door, leaves a trace.
 */
export function auditTrail(audit: Audit, refusals: Refusals): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    identify(c)
    const mutating = MUTATING.has(c.req.method)
    const trail: Trail = { audit, refusals }
    if (mutating) {
      TRAIL.set(c, trail)
      // Asked now, of the request as it came: reading a chunked body (the body limit) makes c.req.raw a
      // new Request that no socket answers for, and every row of such a request said `source: null`.
      sourceOf(c)
    }
    await next()

    const status = c.res.status
    if (!mutating || c.get("route")?.rule?.audit === false) {
      if (DENIED.has(status)) await noteRefusal(c, refusals, trail)
      return
    }
    const outcome = c.get("auditOutcome")
    if (trail.ticket) {
      await trail.ticket.finish({
        status,
        // A command that ran and failed is answered 200 (the request was served; `success: false` in the
        // body says the command failed) but is a failure in the audit log.
        result: outcome?.success === false ? "failed" : resultOf(status),
        nodeId: typeof outcome?.node === "string" && NODE_NAME.test(outcome.node) ? outcome.node : null,
        detail: outcome ?? null,
      })
      return
    }
    if (status >= 400) return noteRefusal(c, refusals, trail)
    // Not refused, yet no row before it: an action that took none (there should be none); kept anyway.
    const { body, row } = await described(c, trail, MAX_READ_BODY)
    const nodeId = nodeOf(c.get("route"), body, undefined)
    await audit.record({ ...row, nodeId, command: null, status, result: resultOf(status), detail: body })
  }
}
