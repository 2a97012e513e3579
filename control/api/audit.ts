// GET /api/audit (admin): the audit log, oldest first, filtered by actor, node, action, result and
// time; `after` is the cursor for the next page.
import { Hono } from "hono"
import { type Audit, AuditFilter } from "../domain/auth/audit.ts"
import type { ApiEnv } from "./auth.ts"
import { query } from "./validate.ts"

export const auditRoutes = (audit: Audit) =>
  new Hono<ApiEnv>().get("/api/audit", query(AuditFilter), async (c) =>
    c.json({ entries: await audit.list(c.req.valid("query")) }),
  )
