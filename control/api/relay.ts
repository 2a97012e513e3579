// POST /api/fleet/run: one shell command on many enrolled nodes at once, relayed through their agents
// (control/domain/relay.ts), no SSH. The same door as POST /api/run-command: `commands:run` by the
// route's rule, `commands:run-high` for what the command registry calls high risk, the caller's
// `commands` rate limit (one hit per relay, whatever its node count), and one audit row with counts.
// Unknown node ids are a 404 that lists them: nothing is queued unless every named node exists.
//
// A run can be cancelled (control/domain/relay-cancel.ts): by its id, which the caller may choose
// (`run_id`, a UUID), through POST /api/fleet/run/:runId/cancel on any replica; or by the caller
// going away (a closed connection, an MCP call cancelled, a Ctrl-C, a chat turn cancelled), which is
// what ssh and pssh make of a closed session. The run's request then answers each node as it ended,
// `cancelled` for those stopped or never reached.
import { randomUUID } from "node:crypto"
import { Hono } from "hono"
import { z } from "zod"
import { MAX_RUN_COMMAND_CHARS, MAX_RUN_TIMEOUT_SECONDS } from "../../protocol/agent.ts"
import { NodeId } from "../../protocol/ids.ts"
import type { RateLimiter } from "../domain/auth/rate-limiter.ts"
import { checkCommandRisk } from "../domain/command-risk.ts"
import type { Relay } from "../domain/relay.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { chargeLimit } from "./guard.ts"
import { jsonBody, params } from "./validate.ts"

export const MAX_RELAY_NODES = 5000

export const RelayRequest = z
  .object({
    command: z
      .string()
      .min(1, { error: "expected a command" })
      .max(MAX_RUN_COMMAND_CHARS, { error: `expected at most ${MAX_RUN_COMMAND_CHARS} characters` })
      .refine((c) => !c.includes("\u0000"), { error: "a command cannot hold a NUL byte" }),
    nodes: z
      .array(NodeId)
      .min(1, { error: "name at least one node, or set `all: true`" })
      .max(MAX_RELAY_NODES, { error: `at most ${MAX_RELAY_NODES} nodes per relay` })
      .optional(),
    all: z.boolean().optional(),
    timeout: z.number().int().min(1).max(MAX_RUN_TIMEOUT_SECONDS).default(30),
    run_id: z.uuid({ error: "expected a UUID that names this run, e.g. from `uuidgen`" }).optional(),
  })
  .strict()
  .refine((b) => (b.nodes !== undefined) !== (b.all === true), {
    error: "name the nodes (`nodes`: enrolled node ids) or set `all: true`, one of the two",
    path: ["nodes"],
  })

type BunServer = { timeout?: (request: Request, seconds: number) => void }

export const RunParams = z.object({ runId: z.uuid({ error: "expected a run's id (a UUID)" }) })

export const relayRoutes = (relay: Relay, limiter: RateLimiter) =>
  new Hono<ApiEnv>()
    .post("/api/fleet/run", jsonBody(RelayRequest), async (c) => {
      const body = c.req.valid("json")
      const principal = userOf(c.get("principal"))
      chargeLimit(c, limiter, "commands", `user:${principal.subject}`)
      const risk = checkCommandRisk(principal.role, body.command)
      // The answer comes after the command's timeout at worst: past the server's idle timeout (60 s).
      ;(c.env as BunServer | undefined)?.timeout?.(c.req.raw, body.timeout + 30)
      const runId = body.run_id ?? randomUUID()
      const result = await relay.relay({
        runId,
        nodes: body.all ? "all" : (body.nodes ?? []),
        command: body.command,
        timeoutSeconds: body.timeout,
        signal: c.req.raw.signal,
      })
      c.set("auditOutcome", {
        success: result.summary.ok === result.results.length,
        risk,
        runId,
        nodes: result.results.length,
        ...result.summary,
      })
      return c.json(result)
    })
    .post("/api/fleet/run/:runId/cancel", params(RunParams), async (c) => {
      const principal = userOf(c.get("principal"))
      const { runId } = c.req.valid("param")
      const answer = await relay.cancel(runId, principal.role)
      c.set("auditOutcome", {
        success: true,
        runId,
        stopping: answer.stopping.length,
        not_started: answer.not_started.length,
      })
      return c.json(answer, 202)
    })
