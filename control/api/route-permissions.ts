// The one place that says who may call what. Every route the app serves has a rule here: `public`
// (no token), `join` (enrolment checks its join token itself), `node` (a node credential, for that
// node's own id only) or the permission a user principal's role must hold. The guard (guard.ts)
// enforces the rule before any handler runs; a served route without a rule is refused (fail closed),
// and tests/route-permissions.test.ts walks the app's whole route table against this one.
//
// A rule also names any rate limits the route takes beyond the caller's base budget (`api` for users,
// `agent` for nodes), whether its answer carries a secret meant for the caller (so the answer is not
// redacted), and whether a mutating call is left out of the audit log (agent telemetry, which the
// event log already holds, and read-only POSTs).
import type { LimitName } from "../domain/auth/rate-limiter.ts"
import type { Permission } from "../domain/auth/roles.ts"

export type RouteAuth = "public" | "join" | "node" | Permission

export interface RouteRule {
  auth: RouteAuth
  limits?: LimitName[]
  issuesSecret?: boolean
  audit?: boolean
  /** The credential may come as `?token=` (WebSocket upgrades from browsers); never logged. */
  tokenInQuery?: boolean
  /**
   * A node route taken only while its credential's rotation is due (409 otherwise), refused by the
   * guard: before the audit row an admitted call writes, so that refusals are only counted.
   */
  whenRotationDue?: boolean
}

export const ROUTE_RULES: Record<string, RouteRule> = {
  "GET /api/health": { auth: "public" },
  "GET /api/health/live": { auth: "public" },

  "POST /api/auth/login": { auth: "public", limits: ["login"], issuesSecret: true },
  "POST /api/auth/refresh": { auth: "auth:session", issuesSecret: true },
  "POST /api/auth/verify": { auth: "auth:session", audit: false },
  "POST /api/auth/revoke": { auth: "auth:session" },
  "GET /api/auth/sessions": { auth: "auth:session" },
  "GET /api/auth/me": { auth: "auth:session" },
  "POST /api/auth/password": { auth: "auth:session" },

  "POST /api/agent/enroll": { auth: "join", limits: ["enroll"], issuesSecret: true },
  "POST /api/agent/:nodeId/heartbeat": { auth: "node", audit: false },
  "POST /api/agent/:nodeId/reports": { auth: "node", audit: false },
  // The commands an operator sent, verbatim, to the node that runs them: `API_TOKEN=x cmd` must reach
  // it as typed, not as `API_TOKEN=[redacted] cmd`. Only that node's own credential can fetch them.
  "GET /api/agent/:nodeId/commands": { auth: "node", issuesSecret: true },
  "POST /api/agent/:nodeId/commands/:id/ack": { auth: "node", audit: false },
  "POST /api/agent/:nodeId/credential": {
    auth: "node",
    issuesSecret: true,
    whenRotationDue: true,
    limits: ["rotations"],
  },

  "GET /api/nodes": { auth: "fleet:read" },
  "GET /api/nodes/:id": { auth: "fleet:read" },
  "PUT /api/nodes/:id/desired": { auth: "fleet:deploy" },
  "POST /api/nodes/join-tokens": { auth: "nodes:manage", issuesSecret: true },
  "POST /api/nodes/:id/rotate-credential": { auth: "nodes:manage" },
  "POST /api/nodes/:id/revoke": { auth: "nodes:manage" },
  "DELETE /api/nodes/:id": { auth: "nodes:manage" },

  // Deploys and rollbacks run by the control plane over its own SSH key, to [fleet.nodes] only; a
  // config_path (a build on this host) needs admin, which the handler checks (api/deployments.ts).
  "GET /api/deployments": { auth: "fleet:read" },
  "GET /api/deployments/:id": { auth: "fleet:read" },
  "POST /api/deployments": { auth: "fleet:deploy" },
  "POST /api/deployments/records": { auth: "fleet:deploy" },
  // What the CLI ran on nodes over SSH with an operator's own keys (exec, rollback), for the audit log.
  "POST /api/operations/records": { auth: "fleet:deploy" },
  "POST /api/rollbacks": { auth: "fleet:deploy" },
  "POST /api/congruence": { auth: "fleet:read" },

  "GET /api/events": { auth: "fleet:read" },
  "GET /api/events/stream": { auth: "fleet:read" },

  "GET /api/users": { auth: "users:manage" },
  "POST /api/users": { auth: "users:manage" },
  "DELETE /api/users/:username": { auth: "users:manage" },
  "PUT /api/users/:username/password": { auth: "users:manage" },
  "PUT /api/users/:username/role": { auth: "users:manage" },

  "GET /api/tokens": { auth: "tokens:manage" },
  "POST /api/tokens": { auth: "tokens:manage", issuesSecret: true },
  "DELETE /api/tokens/:id": { auth: "tokens:manage" },

  "GET /api/audit": { auth: "audit:read" },

  // CLI sessions on the control-plane host. A bash session, full_access, another user's
  // session and high-risk commands need more, which the handlers check (control/domain/cli-sessions.ts).
  "POST /api/cli/sessions": { auth: "cli:use", limits: ["sessions"] },
  "GET /api/cli/sessions": { auth: "cli:use" },
  "GET /api/cli/sessions/:sessionId": { auth: "cli:use" },
  "DELETE /api/cli/sessions/:sessionId": { auth: "cli:use" },
  "POST /api/cli/sessions/:sessionId/interrupt": { auth: "cli:use" },
  "POST /api/cli/sessions/:sessionId/input": { auth: "cli:use", limits: ["commands"] },
  "GET /api/cli/sessions/:sessionId/history": { auth: "cli:use" },
  "GET /api/cli/providers": { auth: "cli:use" },
  "GET /api/cli/providers/:provider/health": { auth: "cli:use" },
  "GET /api/cli/status": { auth: "cli:use" },
  // Each message then counts against `websocket` (per connection) and commands against `commands`.
  "GET /ws/cli/:sessionId": { auth: "cli:use", tokenInQuery: true },

  // Commands on fleet nodes. POST /api/run-command counts the `commands` limit in its handler, since the
  // session it counts is named in the body; the command's risk level may also need commands:run-high.
  "POST /api/run-command": { auth: "commands:run" },
  "POST /api/create-session": { auth: "commands:run", limits: ["sessions"] },
  "GET /api/session/:sessionId": { auth: "commands:run" },
  "GET /api/session/:sessionId/history": { auth: "commands:run" },
  "DELETE /api/session/:sessionId": { auth: "commands:run" },
  "GET /api/registry": { auth: "fleet:read" },
  // Relayed through the agents; like run-command it counts `commands` and checks the risk in its handler.
  "POST /api/fleet/run": { auth: "commands:run" },
  // Whoever may run a run's command may cancel it: the handler checks its risk as for running it.
  "POST /api/fleet/run/:runId/cancel": { auth: "commands:run" },

  // Prometheus scrapes with a token of the `metrics` role (it can read nothing else) or any viewer's.
  "GET /metrics": { auth: "metrics:read" },

  // The web dashboard: a node's recent load, memory and disk, the commands it was sent with their
  // output (what operators ran, so operators'), and the configured nodes' tags.
  "GET /api/nodes/:id/health-history": { auth: "fleet:read" },
  "GET /api/nodes/:id/commands": { auth: "commands:run" },
  "GET /api/fleet/tags": { auth: "fleet:read" },
  "GET /api/events/last-id": { auth: "fleet:read" },
  "GET /api/incidents": { auth: "fleet:read" },
  "GET /api/incidents/:id": { auth: "fleet:read" },
  // Closing one by hand reaches its channels (a resolved notice): those who act on the fleet.
  "POST /api/incidents/:id/resolve": { auth: "fleet:deploy" },
  // It reaches people (Slack, PagerDuty, email) and checks the ITSM credential: admin only.
  "POST /api/notifications/test": { auth: "notifications:test" },

  // The AI chat: anyone who may read the fleet may ask about it. A chat is its owner's (the handlers
  // check); the actions its model proposes run only on the approval of a user whose role allows each
  // one. Every turn costs a model call, so turns count against the `chat` limit per user.
  "GET /api/v1/ai/chat": { auth: "fleet:read" },
  "POST /api/v1/ai/chat": { auth: "fleet:read" },
  "GET /api/v1/ai/chat/:id": { auth: "fleet:read" },
  "PATCH /api/v1/ai/chat/:id": { auth: "fleet:read" },
  "DELETE /api/v1/ai/chat/:id": { auth: "fleet:read" },
  "POST /api/v1/ai/chat/:id/message": { auth: "fleet:read", limits: ["chat"] },
  "POST /api/v1/ai/chat/:id/message/stream": { auth: "fleet:read", limits: ["chat"] },
  "GET /api/v1/ai/chat/:id/follow": { auth: "fleet:read" },
  "GET /api/v1/ai/chat/:id/question": { auth: "fleet:read" },
  "POST /api/v1/ai/chat/:id/answer": { auth: "fleet:read", limits: ["chat"] },
  "POST /api/v1/ai/chat/:id/answer/stream": { auth: "fleet:read", limits: ["chat"] },
  "POST /api/v1/ai/chat/:id/compact": { auth: "fleet:read", limits: ["chat"] },
  "POST /api/v1/ai/chat/:id/cancel": { auth: "fleet:read" },
  "POST /api/v1/ai/chat/:id/steer": { auth: "fleet:read", limits: ["chat"] },
}

export const routeKey = (method: string, path: string) => `${method} ${path}`

export function ruleFor(method: string, path: string): RouteRule | undefined {
  const key = routeKey(method, path)
  return Object.hasOwn(ROUTE_RULES, key) ? ROUTE_RULES[key] : undefined
}

/**
 * The methods some route takes at `path` (a request's path), for a 405's `Allow`: a path the API serves
 * but not with the request's method. Empty when no route has that shape. HEAD is answered as GET.
 */
export function methodsAt(path: string): string[] {
  const got = path.split("/")
  const methods = new Set<string>()
  for (const key of Object.keys(ROUTE_RULES)) {
    const [method = "", pattern = ""] = key.split(" ")
    const want = pattern.split("/")
    if (want.length !== got.length) continue
    if (want.every((segment, i) => (segment.startsWith(":") ? got[i] !== "" : segment === got[i]))) methods.add(method)
  }
  if (methods.has("GET")) methods.add("HEAD")
  return [...methods]
}

/** Served routes that have no rule; the guard refuses them, and the server logs them at start. */
export function undeclaredRoutes(routes: { method: string; path: string }[]): string[] {
  return routes.map((r) => routeKey(r.method, r.path)).filter((k) => !Object.hasOwn(ROUTE_RULES, k))
}
