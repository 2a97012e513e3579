// Bearer authentication and the request's context. Every route but GET /api/health needs
// `Authorization: Bearer <token>`: a session JWT, an API token (or the bootstrap admin token), a node's
// credential, or, for enrolment only, a join token. Who may call what is declared once, in
// route-permissions.ts, and enforced by the guard (guard.ts); the checks here are defence in depth.
import type { Context } from "hono"
import { forbidden, unauthenticated } from "../domain/errors.ts"
import type { Principal, UserPrincipal } from "../domain/ports.ts"
import type { RouteRule } from "./route-permissions.ts"

export interface MatchedRoute {
  key: string
  rule: RouteRule | undefined
  params: Record<string, string>
}

export type ApiEnv = {
  Variables: {
    principal: Principal
    requestId: string
    /** The caller's address as the socket saw it (null in-process); read it with sourceOf (audit-trail.ts). */
    source: string | null
    route: MatchedRoute | null
    /** What the action came to beyond its HTTP status (a command's exit code), for its audit row. */
    auditOutcome?: Record<string, unknown>
  }
}

// An RS256 JWT with a few permissions is about 1 KiB; 4 KiB leaves room and still bounds the work.
const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/

/** The bearer token of a request, or a 401 that says what is wrong with the header. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header === "")
    throw unauthenticated("missing Authorization header; send `Authorization: Bearer <token>`")
  const m = BEARER.exec(header)
  if (!m?.[1]) throw unauthenticated("malformed Authorization header; expected `Bearer <token>`")
  return m[1]
}

/**
 * The request's credential: the bearer header, or, on routes whose rule allows it (a browser cannot
 * set headers on a WebSocket), a `?token=` query parameter when no header is sent. Such a URL must
 * never be logged; only `c.req.path` is.
 */
export function requestToken(c: Context, allowQuery: boolean): string {
  const header = c.req.header("authorization")
  const query = allowQuery && (header === undefined || header === "") ? c.req.query("token") : undefined
  if (query === undefined) return bearerToken(header)
  if (!/^[\x21-\x7e]{1,4096}$/.test(query)) throw unauthenticated("malformed token query parameter")
  return query
}

/**
 * A principal handed over in-process, for the AI chat acting as the user who asked or approved: it can
 * only arrive through `app.fetch(request, env)`'s env, which no socket reaches (Bun.serve passes its
 * server there), so it cannot be claimed over the network.
 */
export const INTERNAL_PRINCIPAL: unique symbol = Symbol("chimera.internal-principal")

export function internalPrincipal(c: Context): UserPrincipal | null {
  const env = c.env as { [INTERNAL_PRINCIPAL]?: UserPrincipal } | undefined
  return env?.[INTERNAL_PRINCIPAL] ?? null
}

/** The calling user (not a node); the guard has already checked the route's permission. */
export function userOf(principal: Principal | undefined): UserPrincipal {
  if (principal?.kind !== "user") throw forbidden("this route needs a user or API token, not a node credential")
  return principal
}
