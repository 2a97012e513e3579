// CLI sessions over HTTP: open, list, read, interrupt and close sessions, send one command
// and get its output and exit code back (the HTTP alternative to the WebSocket in cli-socket.ts), read
// a session's history, and the providers and overall status. The guard has checked cli:use and the
// rate limits; the domain checks the rest (bash and full_access, ownership, each command's risk).
// The audit trail records each POST and DELETE here once, /input with its command and outcome: nothing
// more is written per command on this door (the WebSocket, which has no such row, calls recordCommand).
import type { Context } from "hono"
import { Hono } from "hono"
import { z } from "zod"
import { SessionId } from "../../protocol/ids.ts"
import { HistoryQuery } from "../domain/cli-history.ts"
import { ProviderName } from "../domain/cli-providers.ts"
import { CONTROL_PLANE_NODE, NewCliSession, SessionFilter } from "../domain/cli-session-model.ts"
import type { CliSessions } from "../domain/cli-sessions.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { jsonBody, params, query } from "./validate.ts"

export const CliSessionParams = z.object({ sessionId: SessionId }).strict()
const ProviderParams = z.object({ provider: ProviderName }).strict()

/** Bun closes a connection idle for 60 s (server.ts), so an HTTP command must end well before. */
const HTTP_MAX_TIMEOUT_MS = 50_000
const HTTP_DEFAULT_TIMEOUT_MS = 30_000
/** Output kept for the answer; the rest is counted, and the WebSocket streams it all. */
const MAX_ANSWER_OUTPUT = 1024 * 1024

const Input = z
  .object({
    command: z
      .string()
      .min(1)
      .max(64 * 1024),
    timeout: z.number().int().min(1).max(HTTP_MAX_TIMEOUT_MS).optional(),
  })
  .strict()

/** Where the session's WebSocket is, as the caller reached this API. */
function websocketUrl(c: Context, id: string): string {
  const url = new URL(c.req.url)
  return `${url.protocol === "https:" ? "wss:" : "ws:"}//${url.host}/ws/cli/${id}`
}

export const cliRoutes = (cli: CliSessions) =>
  new Hono<ApiEnv>()
    .post("/api/cli/sessions", jsonBody(NewCliSession), async (c) => {
      const session = await cli.create(c.req.valid("json"), userOf(c.get("principal")))
      return c.json({ ...session, websocketUrl: websocketUrl(c, session.sessionId) }, 201)
    })
    .get("/api/cli/sessions", query(SessionFilter), async (c) =>
      c.json(await cli.list(userOf(c.get("principal")), c.req.valid("query"))),
    )
    .get("/api/cli/sessions/:sessionId", params(CliSessionParams), async (c) =>
      c.json(await cli.get(c.req.valid("param").sessionId, userOf(c.get("principal")))),
    )
    .delete("/api/cli/sessions/:sessionId", params(CliSessionParams), async (c) => {
      await cli.terminate(c.req.valid("param").sessionId, userOf(c.get("principal")))
      return c.body(null, 204)
    })
    .post("/api/cli/sessions/:sessionId/interrupt", params(CliSessionParams), async (c) => {
      const running = await cli.interrupt(c.req.valid("param").sessionId, userOf(c.get("principal")))
      return c.json({ success: true, message: "Interrupt signal sent", commandRunning: running })
    })
    .post("/api/cli/sessions/:sessionId/input", params(CliSessionParams), jsonBody(Input), async (c) => {
      const { sessionId } = c.req.valid("param")
      const { command, timeout } = c.req.valid("json")
      const who = userOf(c.get("principal"))
      const assessment = cli.authorize(command, who)
      let output = ""
      let truncated = false
      const outcome = await cli.run(sessionId, who, command, {
        timeoutMs: timeout ?? HTTP_DEFAULT_TIMEOUT_MS,
        onOutput: (chunk) => {
          if (output.length + chunk.length <= MAX_ANSWER_OUTPUT) output += chunk
          else truncated = true
        },
      })
      // The audit trail writes this request's one row; the outcome makes a failed command a failure there.
      c.set("auditOutcome", {
        node: CONTROL_PLANE_NODE,
        sessionId,
        success: outcome.success,
        exitCode: outcome.exitCode,
        timedOut: outcome.timedOut,
      })
      return c.json({ sessionId, command, risk: assessment.risk, ...outcome, output, truncated })
    })
    .get("/api/cli/sessions/:sessionId/history", params(CliSessionParams), query(HistoryQuery), (c) =>
      c.json(cli.history(c.req.valid("param").sessionId, userOf(c.get("principal")), c.req.valid("query"))),
    )
    .get("/api/cli/providers", (c) => c.json({ providers: cli.providers.list() }))
    .get("/api/cli/providers/:provider/health", params(ProviderParams), async (c) =>
      c.json(await cli.providers.health(c.req.valid("param").provider)),
    )
    .get("/api/cli/status", async (c) => c.json(await cli.systemStatus()))
