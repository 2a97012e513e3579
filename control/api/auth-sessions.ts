// Login sessions over HTTP (the /api/auth/* endpoints): login, refresh, verify, revoke, list
// one's sessions, and change one's own password. Login is the one open route besides health; it is
// rate limited per source address (route-permissions.ts).
import { Hono } from "hono"
import { z } from "zod"
import type { Accounts } from "../domain/auth/accounts.ts"
import { Password } from "../domain/auth/passwords.ts"
import { LoginRequest, type Sessions } from "../domain/auth/sessions.ts"
import { auditBeforeAction, sourceOf } from "./audit-trail.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { jsonBody } from "./validate.ts"

const VerifyRequest = z.object({ token: z.string().min(1).max(4096) }).strict()
const RevokeRequest = z
  .object({
    jti: z
      .string()
      .min(1)
      .max(64)
      .refine((j) => !j.includes("\0"), { error: "a session id cannot hold a NUL byte" })
      .optional(),
  })
  .strict()
const PasswordChange = z.object({ currentPassword: z.string().max(1024), newPassword: Password }).strict()

export const authSessionRoutes = (sessions: Sessions, accounts: Accounts) =>
  new Hono<ApiEnv>()
    .post("/api/auth/login", jsonBody(LoginRequest), async (c) => {
      const meta = { source: sourceOf(c), userAgent: c.req.header("user-agent") ?? null }
      return c.json(await sessions.login(c.req.valid("json"), meta, () => auditBeforeAction(c)), 200)
    })
    .post("/api/auth/refresh", async (c) => {
      const meta = { source: sourceOf(c), userAgent: c.req.header("user-agent") ?? null }
      return c.json(await sessions.refresh(userOf(c.get("principal")), meta))
    })
    .post("/api/auth/verify", jsonBody(VerifyRequest), async (c) =>
      c.json(await sessions.verify(c.req.valid("json").token)),
    )
    .post("/api/auth/revoke", jsonBody(RevokeRequest), async (c) => {
      const { jti } = c.req.valid("json")
      return c.json(await sessions.revoke(userOf(c.get("principal")), jti))
    })
    .get("/api/auth/sessions", async (c) => c.json(await sessions.list(userOf(c.get("principal")))))
    .post("/api/auth/password", jsonBody(PasswordChange), async (c) => {
      const { currentPassword, newPassword } = c.req.valid("json")
      const source = sourceOf(c)
      return c.json(
        await accounts.changeOwnPassword(userOf(c.get("principal")), newPassword, (user) =>
          sessions.confirm(user, currentPassword, source),
        ),
      )
    })
