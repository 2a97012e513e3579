// The control plane's HTTP API: one Hono app chaining one router per resource, so its type can be
// exported for the CLI's typed client (hc<AppType>). Before any router, in this order: the audit trail
// (request id, source, one row per mutating request whatever its answer), answer redaction, body
// limits, and the guard, which authenticates, rate-limits and authorizes each request by the route's
// rule in route-permissions.ts (health and login are public; enrolment checks its join token itself).
// In front of it all, the agent fast path answers agents' heartbeats, polls, acks and reports with the
// same checks for a fraction of the cost (agent-fast-path.ts), and passes anything unusual on.

import type { Tracer } from "@opentelemetry/api"
import { Hono, type MiddlewareHandler } from "hono"
import type { EventCursor } from "../adapters/store/event-cursor.ts"
import type { StoreProbe } from "../adapters/store/health-probe.ts"
import type { NodeCommands } from "../adapters/store/node-commands.ts"
import { type ControlMetrics, createControlMetrics } from "../adapters/telemetry/prometheus.ts"
import type { Chats } from "../ai/chats.ts"
import type { Accounts } from "../domain/auth/accounts.ts"
import type { Audit } from "../domain/auth/audit.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import type { NodeIdentity } from "../domain/auth/node-identity.ts"
import type { RateLimiter } from "../domain/auth/rate-limiter.ts"
import type { Sessions } from "../domain/auth/sessions.ts"
import type { CliSessions } from "../domain/cli-sessions.ts"
import type { CommandService } from "../domain/command-service.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { HealthHistory } from "../domain/health-history.ts"
import type { Incidents } from "../domain/incidents.ts"
import type { NotifyTest } from "../domain/notify-test.ts"
import { type EventBusPort, systemClock } from "../domain/ports.ts"
import type { Relay } from "../domain/relay.ts"
import { createReportQuota, DEFAULT_REPORT_QUOTA, type ReportQuota } from "../domain/report-quota.ts"
import type { FleetOperations } from "../ops/fleet-operations.ts"
import { agentRoutes, enrollRoutes } from "./agent.ts"
import { agentFastPath, agentFront, fastAnswer } from "./agent-fast-path.ts"
import { aiChatRoutes } from "./ai-chat.ts"
import { auditRoutes } from "./audit.ts"
import { auditTrail } from "./audit-trail.ts"
import { authSessionRoutes } from "./auth-sessions.ts"
import { bodyLimits } from "./body-limits.ts"
import { cliRoutes } from "./cli-sessions.ts"
import { cliSocketRoutes } from "./cli-socket.ts"
import { commandRoutes } from "./commands.ts"
import { deploymentRoutes } from "./deployments.ts"
import { errorResponse, noticingStoreBack, onError } from "./errors.ts"
import { eventCursorRoutes } from "./event-cursor.ts"
import { createEventFanout, DEFAULT_STREAM_LIMITS, type StreamLimits } from "./event-fanout.ts"
import { eventRoutes } from "./events.ts"
import { fleetTagRoutes } from "./fleet-tags.ts"
import { auditBefore, guard } from "./guard.ts"
import { healthRoutes } from "./health.ts"
import { incidentRoutes } from "./incidents.ts"
import { metricsRoutes, requestMetrics } from "./metrics.ts"
import { nodeHistoryRoutes } from "./node-history.ts"
import { nodeIdentityRoutes } from "./node-identity.ts"
import { nodeRoutes } from "./nodes.ts"
import { notificationRoutes } from "./notifications.ts"
import { redactAnswers } from "./redact-answers.ts"
import type { Refusals } from "./refusals.ts"
import { relayRoutes } from "./relay.ts"
import { methodsAt } from "./route-permissions.ts"
import { tokenRoutes } from "./tokens.ts"
import { userRoutes } from "./users.ts"
import { whoamiRoutes } from "./whoami.ts"

/** The trust layer: who calls, what they may do, how often, and the record of it. */
export interface TrustDeps {
  authenticator: Authenticator
  limiter: RateLimiter
  sessions: Sessions
  accounts: Accounts
  identity: NodeIdentity
  audit: Audit
  /** Refused requests, counted and summarised in the audit log. */
  refusals: Refusals
}

export interface AppDeps {
  fleet: Fleet
  bus: EventBusPort
  trust: TrustDeps
  /** CLI sessions (shells and AI coding tools) on this host, in tmux. */
  cli: CliSessions
  commands: CommandService
  /** Commands relayed through the agents (POST /api/fleet/run). */
  relay: Relay
  /** Deploy, rollback and congruence, run by the control plane for every caller. */
  operations: FleetOperations
  /** What the web dashboard reads beyond nodes and events: health history, a node's commands. */
  dashboard: {
    history: HealthHistory
    nodeCommands: NodeCommands
    events: EventCursor
    /** Each configured node's tags ([fleet.nodes.NAME] tags), by name. */
    tags: Readonly<Record<string, readonly string[]>>
  }
  /** false: agent requests go the whole chain too (tests compare the two ways in). */
  agentFastPath?: boolean
  /** What GET /metrics shows; default: a registry of this app's own. */
  metrics?: ControlMetrics
  /** Spans for API requests, when an OpenTelemetry collector is configured. */
  tracer?: Tracer | null
  /** Caps on live event streams ([limits]); default DEFAULT_STREAM_LIMITS. */
  streams?: StreamLimits
  /** Incidents and their deliveries (GET /api/incidents). */
  incidents: Incidents
  /** A test notice through each configured channel (POST /api/notifications/test). */
  notifyTest: NotifyTest
  /** Reads and writes the store for GET /api/health. */
  storeProbe: StoreProbe
  /** What each node may report per window ([limits]); default DEFAULT_REPORT_QUOTA on the system clock. */
  reportQuota?: ReportQuota
  /** The AI chat; null or absent: no provider is configured and its routes say how to set one. */
  ai?: Chats | null
}

const passOn: MiddlewareHandler = (_c, next) => next()

export function createApp(deps: AppDeps) {
  return createApi(deps).app
}

/**
 * The app and the server's fetch for it: plain agent requests answered in front of the app
 * (agent-fast-path.ts agentFront), everything else by the app itself.
 */
export function createApi(deps: AppDeps) {
  const { fleet, trust, agentFastPath: fast = true } = deps
  const metrics = deps.metrics ?? createControlMetrics({ listNodes: () => fleet.listNodes() })
  const quota = deps.reportQuota ?? createReportQuota(DEFAULT_REPORT_QUOTA, systemClock)
  const measure = noticingStoreBack(requestMetrics(metrics, deps.tracer ?? null))
  const answer = fastAnswer({
    fleet,
    authenticator: trust.authenticator,
    limiter: trust.limiter,
    quota,
    refusals: trust.refusals,
  })
  const app = buildApp(deps, { metrics, quota, measure, fast: fast ? agentFastPath(answer) : passOn })
  const appFetch = (request: Request, server: unknown) => app.fetch(request, server)
  return { app, fetch: fast ? agentFront(appFetch, answer, measure) : appFetch }
}

interface Shared {
  metrics: ControlMetrics
  quota: ReportQuota
  measure: MiddlewareHandler
  fast: MiddlewareHandler
}

function buildApp(deps: AppDeps, { metrics, quota, measure, fast }: Shared) {
  const { fleet, bus, trust, commands, cli, relay, operations, dashboard } = deps
  const fanout = createEventFanout(bus, deps.streams ?? DEFAULT_STREAM_LIMITS)
  const app = new Hono()
    .use("*", measure)
    .use("/api/agent/*", fast)
    .use("/api/*", auditTrail(trust.audit, trust.refusals))
    .use("/api/*", redactAnswers)
    // Admitted before any body is read: an unauthenticated client cannot make the server buffer a
    // report batch's 48 MiB to be told 401 (the limit needs the body, the guard only the headers).
    .use("/api/*", guard(trust.authenticator, trust.limiter))
    .use("/api/*", bodyLimits)
    .use("/api/*", auditBefore)
    .use("/ws/*", auditTrail(trust.audit, trust.refusals))
    .use("/ws/*", guard(trust.authenticator, trust.limiter))
    .use("/metrics", guard(trust.authenticator, trust.limiter))
    .route("/", healthRoutes(deps.storeProbe))
    .route("/", enrollRoutes(fleet))
    .route("/", authSessionRoutes(trust.sessions, trust.accounts))
    .route("/", whoamiRoutes)
    .route("/", nodeRoutes(fleet))
    .route("/", agentRoutes(fleet, quota))
    .route("/", nodeIdentityRoutes(trust.identity))
    .route("/", eventRoutes(fleet, fanout, trust.authenticator, metrics.streamOpened))
    .route("/", userRoutes(trust.accounts))
    .route("/", tokenRoutes(trust.accounts))
    .route("/", auditRoutes(trust.audit))
    .route("/", cliRoutes(cli))
    .route("/", cliSocketRoutes({ cli, ...trust }))
    .route("/", commandRoutes(commands, trust.limiter))
    .route("/", relayRoutes(relay, trust.limiter))
    .route("/", deploymentRoutes(operations, trust.audit, trust.limiter))
    .route("/", metricsRoutes(metrics))
    .route("/", nodeHistoryRoutes(fleet, dashboard.history, dashboard.nodeCommands))
    .route("/", fleetTagRoutes(dashboard.tags))
    .route("/", eventCursorRoutes(dashboard.events))
    .route("/", incidentRoutes(deps.incidents))
    .route("/", notificationRoutes(deps.notifyTest))
    .route("/", aiChatRoutes(deps.ai ?? null, trust.authenticator))
  app.notFound((c) => {
    // A path served with other methods: a 405 that names them, so a client learns what it got wrong.
    const allowed = methodsAt(c.req.path)
    if (allowed.length === 0)
      return errorResponse(c, new ChimeraError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`))
    c.header("Allow", allowed.join(", "))
    const message = `${c.req.path} does not take ${c.req.method}; it takes ${allowed.join(", ")}`
    return errorResponse(c, new ChimeraError("METHOD_NOT_ALLOWED", message))
  })
  app.onError(onError)
  return app
}

export type AppType = ReturnType<typeof createApp>
