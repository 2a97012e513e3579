// The guard: for every /api and /ws request, find the route Hono matched, look up its rule
// (route-permissions.ts), authenticate the bearer, count the caller against its rate limits, and
// check the rule: a permission of the user's role, or, on agent routes, a node acting as itself. It
// runs before any handler, so no handler can forget it. A matched route without a rule is refused.
import type { Context, MiddlewareHandler } from "hono"
import { matchedRoutes } from "hono/route"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { type LimitDecision, type LimitName, type RateLimiter, rateLimited } from "../domain/auth/rate-limiter.ts"
import { can, leastRoleFor } from "../domain/auth/roles.ts"
import { ChimeraError, conflict, forbidden } from "../domain/errors.ts"
import type { Principal } from "../domain/ports.ts"
import { tokenKind } from "../domain/tokens.ts"
import { auditBeforeAction, sourceOf } from "./audit-trail.ts"
import { type ApiEnv, bearerToken, internalPrincipal, type MatchedRoute, requestToken } from "./auth.ts"
import { routeKey, ruleFor } from "./route-permissions.ts"

/** The route that will answer: the first matched handler that is not middleware (`use` is ALL). */
export function matchRoute(c: Context): MatchedRoute | null {
  const route = matchedRoutes(c).find((r) => r.method !== "ALL")
  if (!route) return null
  return {
    key: routeKey(route.method, route.path),
    rule: ruleFor(route.method, route.path),
    params: paramsOf(route.path, c.req.path),
  }
}

function paramsOf(pattern: string, path: string): Record<string, string> {
  const want = pattern.split("/")
  const got = path.split("/")
  const out: Record<string, string> = {}
  want.forEach((segment, i) => {
    if (!segment.startsWith(":")) return
    const raw = got[i] ?? ""
    try {
      out[segment.slice(1)] = decodeURIComponent(raw)
    } catch {
      out[segment.slice(1)] = raw
    }
  })
  return out
}

function setHeaders(c: Context, d: LimitDecision) {
  c.header("X-RateLimit-Limit", String(d.limit))
  c.header("X-RateLimit-Remaining", String(d.remaining))
  c.header("X-RateLimit-Reset", String(Math.ceil(d.resetAt.getTime() / 1000)))
  if (!d.allowed) c.header("Retry-After", String(d.retryAfterSeconds))
}

/** Counts every limit that applies; the headers show the tightest, and the first exceeded one is the 429. */
function charge(c: Context, limiter: RateLimiter, hits: [LimitName, string][]) {
  let tightest: LimitDecision | null = null
  for (const [name, key] of hits) {
    const d = limiter.hit(name, key)
    if (!d.allowed) {
      setHeaders(c, d)
      throw rateLimited(d)
    }
    if (!tightest || d.remaining < tightest.remaining) tightest = d
  }
  if (tightest) setHeaders(c, tightest)
}

function keyFor(name: LimitName, c: Context<ApiEnv>, route: MatchedRoute | null, p: Principal | null): string {
  const who = p === null ? `address:${sourceOf(c) ?? "local"}` : p.kind === "node" ? `node:${p.nodeId}` : p.subject
  if (name === "login" || name === "enroll") return `address:${sourceOf(c) ?? "local"}`
  if (name === "commands") return `session:${route?.params.sessionId ?? who}`
  return who
}

/** The limits the route's rule adds to the caller's base budget, each with its key. */
const routeLimits = (c: Context<ApiEnv>, route: MatchedRoute | null, p: Principal | null) =>
  (route?.rule?.limits ?? []).map((n): [LimitName, string] => [n, keyFor(n, c, route, p)])

/**
 * Everything the guard decides once the route is known: the credential, the rate limits and the
 * route's rule. Throws the request's 401, 403 or 429; sets `principal` when there is one. The agent
 * fast path (agent-fast-path.ts) calls this same function, so both ways in check the same things.
 */
export async function admit(
  c: Context<ApiEnv>,
  route: MatchedRoute | null,
  authenticator: Authenticator,
  limiter: RateLimiter,
): Promise<void> {
  const rule = route?.rule
  if (route && !rule)
    throw new ChimeraError(
      "PERMISSION_DENIED",
      `${route.key} declares no permission in control/api/route-permissions.ts; refused until it does`,
    )
  const extra = (p: Principal | null) => routeLimits(c, route, p)
  if (rule?.auth === "public") {
    charge(c, limiter, extra(null))
    return
  }
  if (rule?.auth === "join") {
    // Enrolment checks its join token itself; any other valid credential is the wrong kind: 403.
    const token = bearerToken(c.req.header("authorization"))
    if (tokenKind(token) !== "join" && (await authenticator.authenticate(token).catch(() => null)))
      throw forbidden("enrolment needs a join token (chimera nodes join-token), not a user or node credential")
    charge(c, limiter, extra(null))
    // A made-up token stops here, refused and counted, before enrolment writes its audit row.
    await authenticator.checkJoinToken(token)
    return
  }

  let principal: Principal
  try {
    principal = internalPrincipal(c) ?? (await authenticator.authenticate(requestToken(c, rule?.tokenInQuery === true)))
  } catch (error) {
    // Failed authentication spends the caller's address budget, which bounds guessing and audit noise.
    if (error instanceof ChimeraError) charge(c, limiter, [["api", keyFor("api", c, route, null)]])
    throw error
  }
  admitAs(c, route, principal, limiter)
}

/**
 * The rest of `admit` once the caller is known (admit, or the agent fast path with a node credential
 * the store knew at once: Authenticator.knownNode): sets `principal`, counts its rate limits and checks
 * the route's rule. Throws the 403 or 429.
 */
export function admitAs(c: Context<ApiEnv>, route: MatchedRoute | null, principal: Principal, limiter: RateLimiter) {
  const rule = route?.rule
  c.set("principal", principal)
  charge(c, limiter, [
    [principal.kind === "node" ? "agent" : "api", keyFor("api", c, route, principal)],
    ...routeLimits(c, route, principal),
  ])

  if (!rule) return // no such route: a 404 for whoever is authenticated
  if (rule.auth === "node") {
    if (principal.kind !== "node") throw forbidden("this route is for node agents; use the node's credential")
    const nodeId = route?.params.nodeId
    if (nodeId !== undefined && nodeId !== principal.nodeId)
      throw forbidden(
        `this credential belongs to node ${JSON.stringify(principal.nodeId)}, not ${JSON.stringify(nodeId)}`,
      )
    // Each call would be an audit row kept for good, and a credential any holder could renew at will.
    if (rule.whenRotationDue && !principal.rotationDue)
      throw conflict(
        "no credential rotation is due for this node: an admin asks for one (chimera nodes rotate-credential), or the credential ages past auth.node_credential_rotation_days",
      )
  } else if (principal.kind === "node") {
    throw forbidden("a node credential may only call its own agent routes")
  } else if (rule.auth === "public" || rule.auth === "join") {
    throw new Error(`${route?.key} admits without a principal (admit), not through admitAs`)
  } else if (!can(principal.role, rule.auth)) {
    throw forbidden(
      `${route?.key} needs the ${rule.auth} permission (role ${leastRoleFor(rule.auth)} or above); ${principal.name} is ${principal.role}`,
    )
  }
}

export function guard(authenticator: Authenticator, limiter: RateLimiter): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const route = matchRoute(c)
    c.set("route", route)
    await admit(c, route, authenticator, limiter)
    return next()
  }
}

/**
 * The action's audit row, written before the action, once the caller is admitted and the body is within
 * its limit (body-limits.ts runs between the two: a body is read only for someone the guard let in). A
 * public route (login) writes it once it knows the caller is someone (the password was right), so a
 * flood of wrong ones is only counted.
 */
export const auditBefore: MiddlewareHandler<ApiEnv> = async (c, next) => {
  if (c.get("route")?.rule?.auth !== "public") await auditBeforeAction(c)
  return next()
}

/**
 * A limit a handler counts itself, because its key is known only from the body (POST /api/run-command
 * names its session in the body, not the path). The headers show it when it is tighter than the
 * caller's base budget the guard already counted.
 */
export function chargeLimit(c: Context, limiter: RateLimiter, name: LimitName, key: string, cost = 1): void {
  const d = limiter.hit(name, key, cost)
  const shown = Number(c.res.headers.get("X-RateLimit-Remaining") ?? Number.POSITIVE_INFINITY)
  if (!d.allowed || d.remaining < shown) setHeaders(c, d)
  if (!d.allowed) throw rateLimited(d)
}
