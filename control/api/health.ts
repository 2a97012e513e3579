// GET /api/health: the only route without a token, for load balancers and `chimera` itself.
import { Hono } from "hono"
import { VERSION } from "../../protocol/version.ts"

export const healthRoutes = new Hono().get("/api/health", (c) => c.json({ status: "ok", version: VERSION }))
