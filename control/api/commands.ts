// The command-execution API, on fleet nodes: run a command (one-off or in a persistent session),
// sessions and their history, and the command registry, under /api (/api/run-command,
// /api/create-session, /api/session/{id}[/history], /api/registry).
// A command runs only on a node named in [fleet.nodes]; `remote: false` (a run on the API's
// own host) is not offered: a shell on the control-plane host is a CLI session (POST /api/cli/sessions).
import { Hono } from "hono"
import { z } from "zod"
import type { RateLimiter } from "../domain/auth/rate-limiter.ts"
import { registryListing } from "../domain/command-registry.ts"
import type { CommandService } from "../domain/command-service.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { chargeLimit } from "./guard.ts"
import { jsonBody, params, query } from "./validate.ts"

/** A session id: letters, digits, `-` and `_` (it names a directory on the node). */
export const CommandSessionId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: "expected 1-64 letters, digits, - or _" })
const NodeName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: "expected a node name from [fleet.nodes]" })

const notTaken = (why: string) =>
  z
    .unknown()
    .refine(() => false, { error: why })
    .optional()

export const RunCommandRequest = z
  .object({
    command: z
      .string()
      .min(1, { error: "expected a command" })
      .max(16_384, { error: "expected at most 16384 characters" })
      .refine((c) => !c.includes("\u0000"), { error: "a command cannot hold a NUL byte" }),
    node: NodeName.optional(),
    session_id: CommandSessionId.optional(),
    timeout: z.number().int().min(1).max(3600).optional(),
    sudo_password: z
      .string()
      .min(1)
      .max(1024)
      .refine((p) => !p.includes("\n") && !p.includes("\r") && !p.includes("\u0000"), {
        error: "a sudo password is one line",
      })
      .optional(),
    username: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: "expected a POSIX user name" })
      .optional(),
    remote: z
      .boolean()
      .refine((r) => r, {
        error: "commands run on fleet nodes only; for a shell on the control-plane host open a CLI session",
      })
      .optional(),
    host: notTaken("name the node in `node` (a name from [fleet.nodes]); the API does not connect to free addresses"),
    port: notTaken("the port comes from the node's address in [fleet.nodes]"),
    password: notTaken(
      "SSH password logins are not supported; the control plane logs in with its key ([ssh] identity_file)",
    ),
  })
  .strict()

const CreateSessionRequest = z
  .object({
    session_id: CommandSessionId.optional(),
    node: NodeName.optional(),
    client_info: z.record(z.string().max(64), z.union([z.string().max(256), z.number(), z.boolean()])).optional(),
  })
  .strict()
  .refine((b) => b.client_info === undefined || Object.keys(b.client_info).length <= 16, {
    error: "client_info holds at most 16 fields",
    path: ["client_info"],
  })

const SessionParams = z.object({ sessionId: CommandSessionId })
const HistoryQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(20) }).strict()

export const commandRoutes = (commands: CommandService, limiter: RateLimiter) =>
  new Hono<ApiEnv>()
    .post("/api/run-command", jsonBody(RunCommandRequest), async (c) => {
      const body = c.req.valid("json")
      const principal = userOf(c.get("principal"))
      const result = await commands.run(principal, {
        // The `commands` limit counts per session, once the session is known to be the caller's; a
        // command outside a session counts against the caller's own budget.
        charge: (sessionId) =>
          chargeLimit(c, limiter, "commands", sessionId ? `command-session:${sessionId}` : `user:${principal.subject}`),
        command: body.command,
        node: body.node,
        sessionId: body.session_id,
        timeout: body.timeout,
        sudoPassword: body.sudo_password,
        username: body.username,
        requestId: c.get("requestId"),
      })
      c.set("auditOutcome", {
        node: result.metadata.node,
        success: result.success,
        exitCode: result.exit_code,
        risk: result.metadata.risk_level,
        failure: result.metadata.failure?.kind ?? null,
      })
      return c.json(result)
    })
    .post("/api/create-session", jsonBody(CreateSessionRequest), async (c) => {
      const body = c.req.valid("json")
      const created = await commands.createSession(userOf(c.get("principal")), {
        sessionId: body.session_id,
        node: body.node,
        clientInfo: body.client_info,
      })
      return c.json(created, 201)
    })
    .get("/api/session/:sessionId", params(SessionParams), async (c) =>
      c.json(await commands.sessionInfo(userOf(c.get("principal")), c.req.valid("param").sessionId)),
    )
    .get("/api/session/:sessionId/history", params(SessionParams), query(HistoryQuery), async (c) =>
      c.json(
        await commands.history(userOf(c.get("principal")), c.req.valid("param").sessionId, c.req.valid("query").limit),
      ),
    )
    .delete("/api/session/:sessionId", params(SessionParams), async (c) =>
      c.json(await commands.closeSession(userOf(c.get("principal")), c.req.valid("param").sessionId)),
    )
    .get("/api/registry", (c) => c.json(registryListing()))
