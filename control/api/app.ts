// The control plane's HTTP API: one Hono app chaining one router per resource, so its type can be
// exported for the CLI's typed client (hc<AppType>). Order matters: health and enrolment are open
// (enrolment checks its join token itself), everything after the bearer middleware is not.
import { Hono } from "hono"
import { bodyLimit } from "hono/body-limit"
import { ChimeraError } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { EventBusPort } from "../domain/ports.ts"
import { agentRoutes, enrollRoutes } from "./agent.ts"
import { authenticate } from "./auth.ts"
import { errorResponse, onError } from "./errors.ts"
import { eventRoutes } from "./events.ts"
import { healthRoutes } from "./health.ts"
import { nodeRoutes } from "./nodes.ts"

const MiB = 1024 * 1024
/** A report batch holds up to 500 reports of at most ~70 KiB (a failed heal's output is capped at 64 KiB). */
const REPORTS_LIMIT = 48 * MiB
const DEFAULT_LIMIT = 1 * MiB
const REPORTS_PATH = /^\/api\/agent\/[^/]+\/reports$/

export interface AppDeps {
  fleet: Fleet
  bus: EventBusPort
}

const limitBody = (maxSize: number) =>
  bodyLimit({
    maxSize,
    onError: (c) =>
      errorResponse(c, new ChimeraError("PAYLOAD_TOO_LARGE", `the request body is larger than ${maxSize / MiB} MiB`)),
  })

export function createApp({ fleet, bus }: AppDeps) {
  const app = new Hono()
    .use("/api/agent/:nodeId/reports", limitBody(REPORTS_LIMIT))
    .use("/api/*", async (c, next) => (REPORTS_PATH.test(c.req.path) ? next() : limitBody(DEFAULT_LIMIT)(c, next)))
    .route("/", healthRoutes)
    .route("/", enrollRoutes(fleet))
    .use("/api/*", authenticate(fleet))
    .route("/", nodeRoutes(fleet))
    .route("/", agentRoutes(fleet))
    .route("/", eventRoutes(fleet, bus))
  app.notFound((c) => errorResponse(c, new ChimeraError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`)))
  app.onError(onError)
  return app
}

export type AppType = ReturnType<typeof createApp>
