// The request's identity and its audit row. Every request gets a request id (the caller's
// X-Request-Id when it is a plain token, else a new UUID, echoed back) and its source address (the
// socket's; X-Forwarded-For is not trusted). Every mutating request (POST, PUT, PATCH, DELETE) is
// recorded once, after its answer is decided, whatever that answer is: refusals and failures are the
// entries an investigation needs most. Routes whose rule says `audit: false` are skipped.
import { randomUUID } from "node:crypto"
import type { Context, MiddlewareHandler } from "hono"
import { type Audit, resultOf } from "../domain/auth/audit.ts"
import { shownUsername } from "../domain/auth/sessions.ts"
import type { ApiEnv } from "./auth.ts"

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"])
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/
/** Bodies above this are summarised by size; an audit row records intent, not payloads. */
const MAX_RECORDED_BODY = 16 * 1024

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

async function bodyOf(c: Context): Promise<Record<string, unknown> | null> {
  const length = Number(c.req.header("content-length") ?? Number.NaN)
  if (!(length > 0)) return null
  if (length > MAX_RECORDED_BODY) return { bodyBytes: length }
  try {
    const body: unknown = await c.req.json()
    return body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : null
  } catch {
    return null // not JSON: nothing is kept, since raw text could hold a secret under no name at all
  }
}

/** The node an action was about: the path's, the body's, or the one a command ran on (its session's). */
function nodeOf(
  params: Record<string, string> | undefined,
  body: Record<string, unknown> | null,
  outcome: Record<string, unknown> | undefined,
): string | null {
  const named = [params?.id, params?.nodeId, body?.nodeId, body?.node, outcome?.node]
  // A refused request's body may hold anything: only a name shaped like a node id is kept.
  return (named.find((n) => typeof n === "string" && NODE_NAME.test(n)) as string | undefined) ?? null
}

/** The request's id (echoed back as X-Request-Id); the agent fast path sets it too. */
export function identify(c: Context<ApiEnv>): string {
  const given = c.req.header("x-request-id")
  const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID()
  c.set("requestId", requestId)
  c.header("X-Request-Id", requestId)
  return requestId
}

/** The door a request came through when a Chimera client says so (`X-Chimera-Via: mcp`), for the audit row. */
const VIA = new Set(["mcp", "chat", "rpc", "dashboard", "cli"])
function viaOf(c: Context<ApiEnv>): { via?: string } {
  const via = c.req.header("x-chimera-via")
  return via !== undefined && VIA.has(via) ? { via } : {}
}

export function auditTrail(audit: Audit): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const requestId = identify(c)
    if (!MUTATING.has(c.req.method)) return next()
    await next()

    const route = c.get("route")
    if (route?.rule?.audit === false) return
    const principal = c.get("principal")
    const raw = await bodyOf(c)
    const outcome = c.get("auditOutcome")
    const via = viaOf(c)
    // Only a name shaped like a username is kept: a password typed into that field must not reach the
    // audit log, as the actor or in the details.
    const typed = typeof raw?.username === "string" ? shownUsername(raw.username) : null
    const body = typed === null ? raw : { ...raw, username: typed }
    const attempted = typed === null || typed !== raw?.username ? "anonymous" : `login:${typed}`
    await audit.record({
      requestId,
      actor: principal ? (principal.kind === "node" ? `node:${principal.nodeId}` : principal.name) : attempted,
      role: principal ? (principal.kind === "node" ? "node" : principal.role) : null,
      source: sourceOf(c),
      method: c.req.method,
      path: c.req.path,
      action: route?.key ?? `${c.req.method} (no route)`,
      nodeId: nodeOf(route?.params, body, outcome),
      command: typeof body?.command === "string" ? body.command : null,
      status: c.res.status,
      // A command that ran and failed is answered 200 (seed 001) but is a failure in the audit log.
      result: outcome?.success === false ? "failed" : resultOf(c.res.status),
      detail: outcome || via.via ? { ...body, ...(outcome ? { outcome } : {}), ...via } : body,
    })
  }
}
