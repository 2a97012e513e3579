// GET /api/fleet/tags: the tags [fleet.nodes.NAME] gives each node in the configuration, by node name,
// so the dashboard can filter enrolled nodes by tag (agents do not carry tags themselves).
import { Hono } from "hono"
import type { ApiEnv } from "./auth.ts"

export const fleetTagRoutes = (tags: Readonly<Record<string, readonly string[]>>) =>
  new Hono<ApiEnv>().get("/api/fleet/tags", (c) => c.json({ tags }))
