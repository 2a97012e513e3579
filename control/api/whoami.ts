// Who the caller is, as the control plane sees its credential: for `chimera whoami`, and for clients
// (MCP, the dashboard) that offer only what the caller's role may do.
import { Hono } from "hono"
import { permissionsOf } from "../domain/auth/roles.ts"
import { type ApiEnv, userOf } from "./auth.ts"

export const whoamiRoutes = new Hono<ApiEnv>().get("/api/auth/me", (c) => {
  const p = userOf(c.get("principal"))
  // `subject`: who the credential acts for, the same for all of one user's logins (a user's id, or
  // `token:ID`): what a client counts per caller by.
  return c.json({ name: p.name, role: p.role, via: p.via, subject: p.subject, permissions: permissionsOf(p.role) })
})
