// GET /api/audit (admin): the audit log, oldest first, filtered by actor, node, action, result and
// time; `after` is the cursor for the next page, and `tail=true` answers the newest `limit` entries that
// match (still oldest first), which is what a person listing the log wants to see.
import { Hono } from "hono"
import { type Audit, AuditFilter } from "../domain/auth/audit.ts"
import type { ApiEnv } from "./auth.ts"
import { QueryFlag, query } from "./validate.ts"

const AuditPage = AuditFilter.extend({ tail: QueryFlag.optional() })

export const auditRoutes = (audit: Audit) =>
  new Hono<ApiEnv>().get("/api/audit", query(AuditPage), async (c) =>
    c.json({ entries: await audit.list(c.req.valid("query")) }),
  )
