// Incidents for people: a filtered list (open or resolved, one node's), one incident with its
// timeline and its deliveries (channel, status, attempts, last error), and closing one by hand. Deliveries carry what the
// outbox knows of each send, never a channel's URL or key, which live only in the configuration.
import { Hono } from "hono"
import { z } from "zod"
import { notFound } from "../domain/errors.ts"
import type { Incidents } from "../domain/incidents.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { jsonBody, params, query } from "./validate.ts"

export const IncidentsQuery = z
  .object({
    status: z.enum(["open", "resolved"], { error: 'expected "open" or "resolved"' }).optional(),
    node: z.string().min(1).max(255).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict()
const IncidentParams = z.object({ id: z.uuid({ error: "expected an incident id (a UUID)" }) })
export const ResolveIncidentBody = z
  .object({
    note: z
      .string()
      .trim()
      .min(1, "a note says why in words; leave it out for none")
      .max(1000)
      .refine((n) => !n.includes("\0"), { error: "a note cannot hold a NUL byte" })
      .optional(),
  })
  .strict()

export const incidentRoutes = (incidents: Incidents) =>
  new Hono<ApiEnv>()
    .get("/api/incidents", query(IncidentsQuery), async (c) => {
      const q = c.req.valid("query")
      return c.json({ incidents: await incidents.list({ status: q.status, nodeId: q.node, limit: q.limit }) })
    })
    .get("/api/incidents/:id", params(IncidentParams), async (c) => {
      const id = c.req.valid("param").id
      const detail = await incidents.get(id)
      if (!detail) throw notFound(`incident ${JSON.stringify(id)}`)
      return c.json(detail)
    })
    .post("/api/incidents/:id/resolve", params(IncidentParams), jsonBody(ResolveIncidentBody), async (c) => {
      const { note } = c.req.valid("json")
      const who = userOf(c.get("principal")).name
      const detail = await incidents.resolveByHand(c.req.valid("param").id, who, note ?? null)
      // The audit row names the incident's node (the path names only the incident).
      c.set("auditOutcome", { node: detail.incident.nodeId })
      return c.json(detail)
    })
