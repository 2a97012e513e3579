// Bearer authentication. Every route but GET /api/health needs `Authorization: Bearer <token>`:
// the admin token (or, later, a user's), a node's credential, or, for enrolment only, a join token.
// Who may call what is declared once per router with `requireAdmin` / `requireNodeSelf`.
import type { MiddlewareHandler } from "hono"
import { forbidden, unauthenticated } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { Principal } from "../domain/ports.ts"

export type ApiEnv = { Variables: { principal: Principal } }

/** The bearer token of a request, or a 401 that says what is wrong with the header. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header === "")
    throw unauthenticated("missing Authorization header; send `Authorization: Bearer <token>`")
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header)
  if (!m?.[1]) throw unauthenticated("malformed Authorization header; expected `Bearer <token>`")
  return m[1]
}

export const authenticate =
  (fleet: Fleet): MiddlewareHandler<ApiEnv> =>
  async (c, next) => {
    c.set("principal", await fleet.authenticate(bearerToken(c.req.header("authorization"))))
    await next()
  }

export const requireAdmin: MiddlewareHandler<ApiEnv> = async (c, next) => {
  if (c.get("principal").kind !== "admin") throw forbidden("this route needs an operator token, not a node credential")
  await next()
}

/** The path's `:nodeId` must be the calling node's own. */
export const requireNodeSelf =
  (fleet: Fleet): MiddlewareHandler<ApiEnv> =>
  async (c, next) => {
    fleet.assertNode(c.get("principal"), c.req.param("nodeId") ?? "")
    await next()
  }
