// Long-lived API tokens for automation (admin): create (the token is shown once), list, revoke.
import { Hono } from "hono"
import { z } from "zod"
import { type Accounts, NewApiToken } from "../domain/auth/accounts.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { jsonBody, params } from "./validate.ts"

const TokenParams = z.object({ id: z.string().min(1).max(64) })

export const tokenRoutes = (accounts: Accounts) =>
  new Hono<ApiEnv>()
    .get("/api/tokens", async (c) => c.json({ tokens: await accounts.listTokens() }))
    .post("/api/tokens", jsonBody(NewApiToken), async (c) =>
      c.json(await accounts.createToken(c.req.valid("json"), userOf(c.get("principal"))), 201),
    )
    .delete("/api/tokens/:id", params(TokenParams), async (c) =>
      c.json(await accounts.revokeToken(c.req.valid("param").id)),
    )
