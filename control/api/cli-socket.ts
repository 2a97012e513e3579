// GET /ws/cli/{sessionId}: the live WebSocket to a CLI session. The guard has authenticated the
// upgrade (bearer header, or `?token=` for browsers) and checked cli:use; here, before upgrading, the
// session must exist and be the caller's (404, 403, as HTTP answers). Then each frame counts against
// the `websocket` limit of its connection before it is even read; a command also counts against the
// session's `commands` limit, is assessed by the command registry, runs with its output streamed, and
// is written to the audit log once, with its outcome. The credential is checked again on every command
// and cancel, before each frame goes out and every second (socket-credential.ts): a revoked session or
// token, or a removed user, ends the socket with an AUTHENTICATION_FAILED error and close code 1008,
// receives nothing more, and what it queued and has not begun does not run.
import { randomUUID } from "node:crypto"
import { Hono } from "hono"
import { upgradeWebSocket } from "hono/bun"
import type { WSContext } from "hono/ws"
import { failureLog } from "../../protocol/failure-log.ts"
import { createLogger } from "../../protocol/log.ts"
import type { Audit, AuditTicket } from "../domain/auth/audit.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import type { LimitDecision, RateLimiter } from "../domain/auth/rate-limiter.ts"
import { CONTROL_PLANE_NODE } from "../domain/cli-session-model.ts"
import type { CliSessions } from "../domain/cli-sessions.ts"
import { ChimeraError, unauthenticated } from "../domain/errors.ts"
import type { UserPrincipal } from "../domain/ports.ts"
import { storeReason } from "../domain/store-away.ts"
import { sourceOf } from "./audit-trail.ts"
import { type ApiEnv, requestToken, userOf } from "./auth.ts"
import {
  type ClientMessage,
  isFrameError,
  MAX_COMMAND_TIMEOUT_MS,
  readClientFrame,
  type WsErrorCode,
} from "./cli-messages.ts"
import { CliSessionParams } from "./cli-sessions.ts"
import { redactedJsonText } from "./redact-answers.ts"
import { socketCredential } from "./socket-credential.ts"
import { streamCredentials } from "./stream-credentials.ts"
import { params } from "./validate.ts"

const log = createLogger("cli-socket")
/** Commands whose caller could not be checked again because the store failed: said once a minute. */
const storeFailed = failureLog(log, "a CLI session command could not check its credential; not run")

/** Output streamed for one command at most; the rest is dropped with a note (history keeps 1 MiB). */
const MAX_STREAMED_PER_COMMAND = 8 * 1024 * 1024
/** A close reason is at most 123 bytes (RFC 6455 §5.5). */
const MAX_CLOSE_REASON = 120

export interface CliSocketDeps {
  cli: CliSessions
  authenticator: Authenticator
  limiter: RateLimiter
  audit: Audit
}

const PREFIX: Record<string, string> = {
  output: "out",
  status: "status",
  error: "err",
  completion: "complete",
  pong: "pong",
}

const WS_CODE: Partial<Record<ChimeraError["code"], WsErrorCode>> = {
  AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  NOT_FOUND: "SESSION_NOT_FOUND",
  CONFLICT: "PROCESS_DEAD",
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  RATE_LIMIT_EXCEEDED: "RATE_LIMIT",
  PROVIDER_UNAVAILABLE: "PROVIDER_UNAVAILABLE",
  AUDIT_UNAVAILABLE: "AUDIT_UNAVAILABLE",
}
const HTTP_STATUS: Partial<Record<WsErrorCode, number>> = {
  AUTHENTICATION_FAILED: 401,
  PERMISSION_DENIED: 403,
  SESSION_NOT_FOUND: 404,
  PROCESS_DEAD: 409,
  RATE_LIMIT: 429,
  RESOURCE_EXHAUSTED: 429,
}

const limitDetails = (d: LimitDecision) => ({
  retryAfter: d.retryAfterSeconds,
  limit: d.limit,
  window: d.window,
  resetAt: d.resetAt.toISOString(),
})

export const cliSocketRoutes = ({ cli, authenticator, limiter, audit }: CliSocketDeps) => {
  const { clock } = cli
  // Shared by every CLI socket: sockets of one credential share its answers.
  const credentials = streamCredentials(authenticator, "cli:use")
  return new Hono<ApiEnv>().get(
    "/ws/cli/:sessionId",
    params(CliSessionParams),
    upgradeWebSocket((c) => {
      const sessionId = c.req.param("sessionId") as string
      cli.access(sessionId, userOf(c.get("principal")))
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket")
        throw new ChimeraError("UPGRADE_REQUIRED", "this route is a WebSocket; connect with `Upgrade: websocket`")
      const token = requestToken(c, true)
      const source = sourceOf(c)
      const connection = randomUUID()
      let socket: WSContext | null = null
      let seq = 0
      let stopWatching = () => {}
      // Commands this socket queued behind others: they do not begin once its credential is refused.
      const abandoned = new AbortController()

      const frame = (type: string, correlationId: string | null, data: unknown) =>
        // Through the same secret net as every JSON answer (a command may print a token), as the
        // session's HTTP output is: no middleware sees a socket's frames.
        redactedJsonText({
          type,
          id: `${PREFIX[type] ?? type}-${++seq}`,
          correlationId,
          timestamp: clock.now().toISOString(),
          data,
        })
      /** Ends the socket for a credential that no longer holds: said once, then closed. */
      const refused = (reason: string, correlationId: string | null = null) => {
        abandoned.abort(unauthenticated(`not run: ${reason}`))
        const message = `${reason}; the socket is closed`
        socket?.send(frame("error", correlationId, { code: "AUTHENTICATION_FAILED", message, recoverable: false }))
        socket?.close(1008, reason.slice(0, MAX_CLOSE_REASON))
      }
      const credential = socketCredential({ credentials, token, refused })
      const send = (type: string, correlationId: string | null, data: unknown) => {
        const text = frame(type, correlationId, data)
        credential.queue(() => socket?.send(text))
      }
      const fail = (correlationId: string | null, code: WsErrorCode, message: string, details?: unknown) =>
        send("error", correlationId, {
          code,
          message,
          ...(details === undefined ? {} : { details }),
          recoverable: code !== "AUTHENTICATION_FAILED" && code !== "PROCESS_DEAD" && code !== "SESSION_NOT_FOUND",
        })
      const failWith = (correlationId: string | null, error: unknown) => {
        if (error instanceof ChimeraError) {
          const code = WS_CODE[error.code] ?? "INVALID_MESSAGE"
          return fail(correlationId, code, error.message, error.detail)
        }
        log.error("CLI session command failed", { session: sessionId, error })
        fail(correlationId, "PROCESS_DEAD", "the command could not be run; the control plane's log has the details")
      }

      /** The caller as of now: a revoked token or session ends the socket. */
      const reauthenticate = async (correlationId: string): Promise<UserPrincipal | null> => {
        try {
          return userOf(await authenticator.authenticate(token))
        } catch (error) {
          if (credential.ended) return null
          if (!(error instanceof ChimeraError)) {
            // The store failing (a PostgreSQL restart), not a refusal: this command is not run (its audit
            // row could not be written either) and the socket stays, as an event stream does.
            storeFailed.failed(error, { session: sessionId })
            fail(
              correlationId,
              "AUDIT_UNAVAILABLE",
              `the control plane cannot check the credential or record the command now (${storeReason(error)}); the command was not run: try again`,
            )
            return null
          }
          credential.stop()
          refused(error.message, correlationId)
          return null
        }
      }

      const recordCommand = (who: UserPrincipal, command: string, status: number, detail: Record<string, unknown>) =>
        audit.recordCommand({
          requestId: randomUUID(),
          actor: who.name,
          role: who.role,
          source,
          nodeId: CONTROL_PLANE_NODE,
          command,
          status,
          detail: { via: "websocket", sessionId, connection, ...detail },
        })

      async function command(msg: Extract<ClientMessage, { type: "command" }>) {
        const who = await reauthenticate(msg.id)
        if (!who) return
        const { command, options } = msg.data
        const refuse = async (code: WsErrorCode, message: string, details?: unknown) => {
          fail(msg.id, code, message, details)
          await recordCommand(who, command, HTTP_STATUS[code] ?? 400, { messageId: msg.id, refused: code })
        }
        const limit = limiter.hit("commands", `session:${sessionId}`)
        if (!limit.allowed)
          return refuse(
            "RATE_LIMIT",
            `Rate limit exceeded. Try again in ${limit.retryAfterSeconds} seconds.`,
            limitDetails(limit),
          )
        try {
          cli.authorize(command, who)
        } catch (error) {
          const e = error as ChimeraError
          return refuse("PERMISSION_DENIED", e.message, e.detail)
        }
        // The command's row comes first: a command the audit log cannot record does not run.
        let ticket: AuditTicket
        try {
          ticket = await audit.beginCommand({
            requestId: randomUUID(),
            actor: who.name,
            role: who.role,
            source,
            nodeId: CONTROL_PLANE_NODE,
            command,
            detail: { via: "websocket", sessionId, connection, messageId: msg.id },
          })
        } catch (error) {
          return failWith(msg.id, error)
        }
        let streamed = 0
        try {
          const outcome = await cli.run(sessionId, who, command, {
            timeoutMs: options?.timeout ?? MAX_COMMAND_TIMEOUT_MS,
            signal: abandoned.signal,
            onOutput: (content) => {
              streamed += content.length
              if (streamed > MAX_STREAMED_PER_COMMAND) return
              send("output", msg.id, {
                content,
                // tee in the pane merges the two streams, so they cannot be told apart here.
                stream: "stdout",
                metadata: { isPartial: !content.endsWith("\n"), format: "text", ansiCodes: content.includes("\x1b[") },
              })
            },
          })
          if (streamed > MAX_STREAMED_PER_COMMAND)
            send("output", msg.id, {
              content: `\n[chimera: ${streamed - MAX_STREAMED_PER_COMMAND} more characters not streamed]\n`,
              stream: "stdout",
              metadata: { isPartial: false, format: "text", ansiCodes: false, truncated: true },
            })
          if (outcome.timedOut)
            fail(msg.id, "PROCESS_TIMEOUT", `Command execution timed out after ${options?.timeout} ms`, {
              timeout: options?.timeout,
            })
          send("completion", msg.id, {
            success: outcome.success,
            duration: outcome.durationMs,
            exitCode: outcome.exitCode,
            typed: outcome.typed,
            statistics: { bytesTransferred: outcome.bytes },
          })
          await ticket.finish({ status: 200, detail: { exitCode: outcome.exitCode, timedOut: outcome.timedOut } })
        } catch (error) {
          failWith(msg.id, error)
          const code = error instanceof ChimeraError ? WS_CODE[error.code] : undefined
          await ticket.finish({ status: (code && HTTP_STATUS[code]) ?? 500, detail: { failed: true } })
        }
      }

      async function cancel(id: string) {
        const who = await reauthenticate(id)
        if (!who) return
        let status = 200
        try {
          const running = await cli.interrupt(sessionId, who)
          send("status", id, { status: cli.status(sessionId), details: { interrupted: running } })
        } catch (error) {
          failWith(id, error)
          status = error instanceof ChimeraError && error.code === "PERMISSION_DENIED" ? 403 : 409
        }
        await audit.record({
          requestId: randomUUID(),
          actor: who.name,
          role: who.role,
          source,
          method: "WS",
          path: `/ws/cli/${sessionId}`,
          action: "cli.cancel",
          nodeId: null,
          command: null,
          status,
          result: status === 200 ? "ok" : status === 403 ? "denied" : "failed",
          detail: { via: "websocket", sessionId, connection, messageId: id },
        })
      }

      return {
        onOpen(_event, ws) {
          socket = ws
          credential.start()
          stopWatching = cli.watch(sessionId, (e) => {
            if (e.kind === "status") return send("status", null, { status: e.status })
            send("status", null, { status: "terminated" })
            credential.queue(() => ws.close(1000, "session terminated"))
          })
          send("status", null, { status: cli.status(sessionId), details: { sessionId } })
        },
        onMessage(event, _ws) {
          // Every frame counts, malformed or not, before it is read.
          const decision = limiter.hit("websocket", `connection:${connection}`)
          if (!decision.allowed)
            return fail(
              null,
              "RATE_LIMIT",
              `Rate limit exceeded. Try again in ${decision.retryAfterSeconds} seconds.`,
              limitDetails(decision),
            )
          const msg = readClientFrame(event.data)
          if (isFrameError(msg)) return fail(msg.correlationId, msg.code, msg.message, msg.details)
          const done = (p: Promise<void>) => p.catch((error) => failWith(msg.id, error))
          switch (msg.type) {
            case "command":
              return void done(command(msg))
            case "cancel":
              return void done(cancel(msg.id))
            case "status":
              return send("status", msg.id, { status: cli.status(sessionId), details: { sessionId } })
            case "ping": {
              const now = clock.now()
              const sent = msg.data.timestamp === undefined ? null : Date.parse(msg.data.timestamp)
              return send("pong", msg.id, {
                serverTime: now.toISOString(),
                latency: sent === null ? null : Math.max(0, now.getTime() - sent),
              })
            }
          }
        },
        onClose() {
          socket = null
          credential.stop()
          stopWatching()
        },
        onError(event) {
          log.warn("CLI socket error", { session: sessionId, error: (event as ErrorEvent).error })
        },
      }
    }),
  )
}
