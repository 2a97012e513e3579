// User administration (admin): add, list, remove, set a password or a role. Answers never carry a hash.
import { Hono } from "hono"
import { z } from "zod"
import { type Accounts, NewUser } from "../domain/auth/accounts.ts"
import { Password } from "../domain/auth/passwords.ts"
import { Role } from "../domain/auth/roles.ts"
import { Username } from "../domain/auth/sessions.ts"
import type { ApiEnv } from "./auth.ts"
import { jsonBody, params } from "./validate.ts"

const UserParams = z.object({ username: Username })
const SetPassword = z.object({ password: Password }).strict()
const SetRole = z.object({ role: Role }).strict()

export const userRoutes = (accounts: Accounts) =>
  new Hono<ApiEnv>()
    .get("/api/users", async (c) => c.json({ users: await accounts.listUsers() }))
    .post("/api/users", jsonBody(NewUser), async (c) => c.json(await accounts.addUser(c.req.valid("json")), 201))
    .delete("/api/users/:username", params(UserParams), async (c) =>
      c.json(await accounts.removeUser(c.req.valid("param").username)),
    )
    .put("/api/users/:username/password", params(UserParams), jsonBody(SetPassword), async (c) =>
      c.json(await accounts.setPassword(c.req.valid("param").username, c.req.valid("json").password)),
    )
    .put("/api/users/:username/role", params(UserParams), jsonBody(SetRole), async (c) =>
      c.json(await accounts.setRole(c.req.valid("param").username, c.req.valid("json").role)),
    )
