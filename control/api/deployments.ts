// Deployments, rollbacks and congruence through the API: one door for every caller (the CLI with
// `--via-control-plane`, MCP, the dashboard, the AI chat). A deploy answers 202 with its id at once;
// its progress is on the event stream and GET /api/deployments/:id. Building a Nix file runs its
// builder on the control-plane host, as the control plane's user, where the admin token and signing
// key live: only an admin may name a `config_path`; an operator deploys a closure already built.
// A health check runs on every target as root, or dials from this host: its command meets the same
// risk rule as any command run on nodes, and its URL may dial the target only (`{host}`).
import { type Context, Hono } from "hono"
import { z } from "zod"
import type { Audit } from "../domain/auth/audit.ts"
import type { RateLimiter } from "../domain/auth/rate-limiter.ts"
import { can } from "../domain/auth/roles.ts"
import { checkCommandRisk } from "../domain/command-risk.ts"
import { forbidden, invalid } from "../domain/errors.ts"
import type { HealthCheck } from "../domain/health-check.ts"
import {
  CongruenceRequestBody,
  DeploymentRecordBody,
  DeployRequestBody,
  RollbackRequestBody,
} from "../ops/deployment-record.ts"
import type { FleetOperations } from "../ops/fleet-operations.ts"
import { deploymentEntries, type OperationEntry, OperationRecordBody } from "../ops/operation-audit.ts"
import { sourceOf } from "./audit-trail.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { chargeLimit } from "./guard.ts"
import { jsonBody, params, query } from "./validate.ts"

const IdParams = z.object({ id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, { error: "expected a deployment id" }) })
/**
 * What one row of the `records` limit stands for in a deployment record's bytes: about the most an
 * audit row of the CLI's holds (a 16 KiB command). Counted by targets alone, a 1 MiB record cost one
 * row: 300 a minute at the `api` limit stored 300 MB a minute for good, where rows allow about 40.
 */
const RECORD_ROW_BYTES = 16 * 1024

const ListQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(20) }).strict()

/** A config_path is a build on this host: admin only (see the module comment). */
function mayBuild(principal: ApiEnv["Variables"]["principal"], configPath: string | undefined) {
  if (configPath === undefined) return
  const user = userOf(principal)
  if (!can(user.role, "cli:full_access"))
    throw forbidden(
      "building a Nix file runs code on the control-plane host: config_path needs the admin role; deploy a built closure (closure) instead",
    )
}

/**
 * Health checks the caller may have run (see the module comment): each command as if sent to
 * POST /api/run-command, and URLs that dial the target itself, never an address the caller names.
 */
function mayCheck(principal: ApiEnv["Variables"]["principal"], commands: string[], urls: string[]) {
  const { role } = userOf(principal)
  for (const command of commands) checkCommandRisk(role, command)
  // Read as written, as health-check.ts fills it in: `{HOST}` or `%7Bhost%7D` parse to the same host
  // name but are never replaced. After it, only a port and then the path: in `{host}:x@10.0.0.1/`
  // the target is the user name and 10.0.0.1 the host.
  for (const url of urls)
    if (!/^https?:\/\/\{host\}(?::\d{1,5})?(?=[/?#]|$)/.test(url))
      throw invalid(
        `health_url ${JSON.stringify(url)}: through the API a health check dials the target itself, so its host must be {host} (e.g. http://{host}:8080/health)`,
      )
}

const actorOf = (principal: ApiEnv["Variables"]["principal"]) => {
  const user = userOf(principal)
  return user.name
}

export const deploymentRoutes = (ops: FleetOperations, audit: Audit, limiter: RateLimiter) => {
  /**
   * One audit row per target an operation the CLI ran over SSH touched, under the caller's name. The
   * rows count against the caller's `records` limit: the audit log keeps every row for good, and
   * 1,000 a request at the `api` limit let one operator write 300,000 a minute.
   */
  const chargeRows = (c: Context<ApiEnv>, rows: number) =>
    chargeLimit(c, limiter, "records", `records:${userOf(c.get("principal")).subject}`, rows)
  const recordEntries = async (c: Context<ApiEnv>, operation: string, entries: OperationEntry[]) => {
    const user = userOf(c.get("principal"))
    for (const e of entries)
      await audit.recordCommand({
        requestId: c.get("requestId"),
        actor: user.name,
        role: user.role,
        source: sourceOf(c),
        nodeId: e.target,
        command: e.command,
        status: e.ok ? 200 : 500,
        detail: { operation, via: "cli", ...e.detail },
      })
  }
  return new Hono<ApiEnv>()
    .get("/api/deployments", query(ListQuery), async (c) =>
      c.json({ deployments: await ops.list(c.req.valid("query").limit) }),
    )
    .get("/api/deployments/:id", params(IdParams), async (c) => c.json(await ops.get(c.req.valid("param").id)))
    .post("/api/deployments", jsonBody(DeployRequestBody), async (c) => {
      const b = c.req.valid("json")
      mayBuild(c.get("principal"), b.config_path)
      mayCheck(c.get("principal"), b.health_cmd, b.health_url)
      const healthChecks: HealthCheck[] = [
        ...b.health_cmd.map((command) => ({ kind: "command" as const, command })),
        ...b.health_url.map((url) => ({ kind: "http" as const, url })),
      ]
      const started = await ops.startDeploy(
        {
          targets: b.targets,
          configPath: b.config_path,
          closure: b.closure,
          command: b.command ?? null,
          session: b.session,
          healthChecks,
          healthTimeoutSeconds: b.health_timeout_seconds,
          confirmTimeoutSeconds: b.confirm_timeout_seconds,
          activationTimeoutSeconds: b.activation_timeout_seconds,
          dryRun: b.dry_run,
          force: b.force,
        },
        actorOf(c.get("principal")),
      )
      // The row's body summary names a list only by its length; what runs on the nodes is kept whole.
      c.set("auditOutcome", {
        deployment: started.id,
        ...(b.health_cmd.length > 0 ? { health_cmd: b.health_cmd } : {}),
        ...(b.health_url.length > 0 ? { health_url: b.health_url } : {}),
      })
      return c.json({ id: started.id, status: "running" as const }, 202)
    })
    .post("/api/deployments/records", jsonBody(DeploymentRecordBody), async (c) => {
      const record = c.req.valid("json")
      // A record is kept for good too, and its targets' logs make it up to 1 MiB: it counts as many rows
      // as it has targets, or as its size would fill (RECORD_ROW_BYTES each), whichever is more.
      chargeRows(c, Math.max(record.targets.length, Math.ceil(JSON.stringify(record).length / RECORD_ROW_BYTES)))
      await ops.record(record, userOf(c.get("principal")).subject)
      await recordEntries(c, record.kind, deploymentEntries(record))
      c.set("auditOutcome", {
        deployment: record.id,
        status: record.status,
        targets: record.targets.map((t) => `${t.target}:${t.status}`),
      })
      return c.json({ id: record.id }, 201)
    })
    .post("/api/operations/records", jsonBody(OperationRecordBody), async (c) => {
      const { operation, entries } = c.req.valid("json")
      chargeRows(c, entries.length)
      await recordEntries(c, operation, entries)
      return c.json({ recorded: entries.length }, 201)
    })
    .post("/api/rollbacks", jsonBody(RollbackRequestBody), async (c) => {
      const b = c.req.valid("json")
      const results = await ops.rollback({
        targets: b.targets,
        generation: b.generation ?? null,
        activationTimeoutSeconds: b.activation_timeout_seconds,
      })
      c.set("auditOutcome", {
        targets: results.map((r) => `${r.target}:${r.ok ? `generation ${r.generation}` : "failed"}`),
      })
      return c.json({ results })
    })
    .post("/api/congruence", jsonBody(CongruenceRequestBody), async (c) => {
      const b = c.req.valid("json")
      mayBuild(c.get("principal"), b.config_path)
      return c.json(await ops.congruence({ targets: b.targets, configPath: b.config_path, closure: b.closure }))
    })
}
