// The agent's side of the wire contract: HTTP calls to the control plane's agent endpoints
// (protocol/agent.ts lists them). Requests and answers are checked against the shared schemas here, at
// the edge. Failures are thrown as ControlError with the HTTP status (null when the control plane could
// not be reached), so the loops can tell "down, retry" from "credential refused". With several replicas
// every call goes to the one replicas.ts has chosen, and an unanswered call or a 5xx moves that choice
// on; a call the agent itself aborted (stopping) moves nothing.
import { z } from "zod"
import {
  AgentCommand,
  type CommandAck,
  type EnrollRequest,
  EnrollResponse,
  HeartbeatResponse,
  MAX_COMMAND_WAIT_SECONDS,
  type NodeHealth,
  ReportAck,
  type ReportBatch,
  RotatedCredential,
} from "../protocol/agent.ts"
import type { NodeId } from "../protocol/ids.ts"
import { createReplicas, type Replicas } from "./replicas.ts"

export interface OrchestratorPort {
  enroll(joinToken: string, request: EnrollRequest): Promise<EnrollResponse>
  heartbeat(health: NodeHealth): Promise<HeartbeatResponse>
  sendReports(batch: ReportBatch): Promise<ReportAck>
  /** Long-polls for commands; resolves with none when the wait ends empty. */
  fetchCommands(waitSeconds: number, signal?: AbortSignal): Promise<FetchedCommands>
  ackCommand(commandId: string, ack: CommandAck): Promise<void>
  /** A new credential, pending on the control plane until this agent first uses it. */
  rotateCredential(): Promise<RotatedCredential>
}

export interface FetchedCommands {
  commands: AgentCommand[]
  /** Commands this agent does not understand (from a newer control plane); acked as failed. */
  unsupported: Array<{ id: string; kind: string }>
  /** `run` commands given to this agent that their caller cancelled: to stop, if still running. */
  cancel: string[]
}

const LooseCommands = z.object({
  commands: z.array(z.object({ id: z.string().min(1).max(64), kind: z.string() }).loose()),
  // A list it cannot read costs only its cancels (the commands time out as before), never the poll.
  cancel: z.array(z.string().min(1).max(64)).max(10_000).optional().catch(undefined),
})

export class ControlError extends Error {
  readonly code = "E_CONTROL"
  constructor(
    message: string,
    /** HTTP status, or null when no answer came (refused, reset, timed out). */
    readonly status: number | null,
    /** How long the control plane asked us to wait (Retry-After on a 429 or 503), or null. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message)
    this.name = "ControlError"
  }
  /** 401/403: the credential (or join token) was refused; revoked, expired or for another node. */
  get refused(): boolean {
    return this.status === 401 || this.status === 403
  }
}

export interface ControlClientOptions {
  /** One control plane URL, several replicas' (tried in turn), or a shared choice of replica. */
  baseUrl: string | readonly string[] | Replicas
  nodeId: NodeId
  /** Read at each call, so a credential obtained by enrollment is used from then on. */
  credential: () => string | null
  timeoutMs?: number
}

const ErrorBody = z.object({ error: z.string(), code: z.string().optional() }).loose()

export function createControlClient(opts: ControlClientOptions): OrchestratorPort {
  const replicas =
    typeof opts.baseUrl === "string"
      ? createReplicas([opts.baseUrl])
      : "current" in opts.baseUrl
        ? opts.baseUrl
        : createReplicas(opts.baseUrl)
  const timeoutMs = opts.timeoutMs ?? 10_000
  const nodePath = (rest: string) => `api/agent/${encodeURIComponent(opts.nodeId)}/${rest}`

  const call = async <T>(
    method: "GET" | "POST",
    path: string,
    schema: z.ZodType<T>,
    init: { body?: unknown; bearer?: string | null; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> => {
    const bearer = init.bearer === undefined ? opts.credential() : init.bearer
    if (!bearer) throw new ControlError(`no credential to call ${path} with (not enrolled yet)`, null)
    const timeout = AbortSignal.timeout(init.timeoutMs ?? timeoutMs)
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout
    const { url: base, index } = replicas.current()
    let res: Response
    try {
      res = await fetch(new URL(path, base), {
        method,
        signal,
        // The credential goes to the control plane only: a redirect elsewhere is an error, never followed.
        redirect: "error",
        headers: {
          authorization: `Bearer ${bearer}`,
          ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      })
    } catch (err) {
      if (!init.signal?.aborted) replicas.failed(index, (err as Error).message)
      throw new ControlError(`${method} /${path}: control plane unreachable: ${(err as Error).message}`, null)
    }
    const text = await res.text().catch(() => "")
    // A call made with a credential that rotation replaced while it was out (a long poll above all)
    // is refused with 401; it is made again with the new one, not reported as a revoked credential.
    if (res.status === 401 && init.bearer === undefined && opts.credential() !== bearer)
      return call(method, path, schema, init)
    const json = _json(text)
    if (res.status >= 500) replicas.failed(index, `HTTP ${res.status}`)
    else replicas.answered()
    if (!res.ok) {
      const body = ErrorBody.safeParse(json)
      const detail = body.success
        ? `${body.data.error}${body.data.code ? ` (${body.data.code})` : ""}`
        : text.slice(0, 200)
      throw new ControlError(
        `${method} /${path}: HTTP ${res.status}: ${detail}`,
        res.status,
        _retryAfterMs(res.headers.get("retry-after")),
      )
    }
    const parsed = schema.safeParse(json)
    if (!parsed.success)
      throw new ControlError(`${method} /${path}: unexpected answer: ${z.prettifyError(parsed.error)}`, res.status)
    return parsed.data
  }

  return {
    enroll: (joinToken, request) =>
      call("POST", "api/agent/enroll", EnrollResponse, { body: request, bearer: joinToken }),
    heartbeat: (health) => call("POST", nodePath("heartbeat"), HeartbeatResponse, { body: health }),
    sendReports: (batch) => call("POST", nodePath("reports"), ReportAck, { body: batch }),
    async fetchCommands(waitSeconds, signal) {
      const wait = Math.min(Math.max(0, Math.round(waitSeconds)), MAX_COMMAND_WAIT_SECONDS)
      // A command the agent cannot parse (a newer control plane) must not block the ones it can.
      const list = await call("GET", nodePath(`commands?wait=${wait}`), LooseCommands, {
        signal,
        timeoutMs: (wait + 15) * 1000,
      })
      const out: FetchedCommands = { commands: [], unsupported: [], cancel: list.cancel ?? [] }
      for (const c of list.commands) {
        const parsed = AgentCommand.safeParse(c)
        if (parsed.success) out.commands.push(parsed.data)
        else out.unsupported.push({ id: c.id, kind: c.kind })
      }
      return out
    },
    async ackCommand(commandId, ack) {
      await call("POST", nodePath(`commands/${encodeURIComponent(commandId)}/ack`), z.unknown(), { body: ack })
    },
    rotateCredential: () => call("POST", nodePath("credential"), RotatedCredential),
  }
}

/** Retry-After (RFC 9110 §10.2.3) in ms: delay-seconds or an HTTP date; capped at an hour against nonsense. */
function _retryAfterMs(value: string | null): number | null {
  if (value === null) return null
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - Date.now()
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 3_600_000) : null
}

function _json(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}
