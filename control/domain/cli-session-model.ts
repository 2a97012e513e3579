// The vocabulary of CLI sessions, shared by the domain (cli-sessions.ts) and the API: the
// request that opens one, the list filter, the statuses a session passes through, what a command run
// comes to, and the tmux port the sessions need (adapters/tmux.ts provides it).
import { z } from "zod"
import type { SessionId } from "../../protocol/ids.ts"
import { ProviderName } from "./cli-providers.ts"
import type { SessionPort } from "./operation-ports.ts"

/** The tmux port, with Ctrl-C and the pane's process id (adapters/tmux.ts provides both). */
export type CliTmuxPort = SessionPort & {
  interrupt(id: SessionId): Promise<void>
  processId(id: SessionId): Promise<number | null>
}

/**
 * This process, as a tag that outlives it (adapters/process-instance.ts): CLI sessions carry their
 * maker's, so a later start can tell the sessions of a control plane that died from a running one's.
 */
export interface ProcessInstance {
  id: string
  isRunning(id: string): boolean
}

export const CliSessionStatus = z.enum(["initializing", "ready", "processing", "idle", "error", "terminated"])
export type CliSessionStatus = z.infer<typeof CliSessionStatus>

const MetadataKey = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "expected a key of letters, digits, _ . -")
export const NewCliSession = z
  .object({
    cli_tool: ProviderName,
    mode: z.enum(["cli", "interactive", "api"]).default("cli"),
    cwd: z.string().min(1).max(4096).optional(),
    full_access: z.boolean().default(false),
    model: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$/, "expected a model name of letters, digits, . _ : / -")
      .optional(),
    metadata: z
      .record(MetadataKey, z.union([z.string().max(1024), z.number(), z.boolean(), z.null()]))
      .refine((m) => Object.keys(m).length <= 20, "at most 20 metadata keys")
      .optional(),
  })
  .strict()
export type NewCliSession = z.infer<typeof NewCliSession>

export const SessionFilter = z
  .object({
    provider: ProviderName.optional(),
    status: CliSessionStatus.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  })
  .strict()
export type SessionFilter = z.infer<typeof SessionFilter>

/** What one command did; `typed` when it went to an AI tool's prompt and no exit code exists. */
export interface RunOutcome {
  exitCode: number | null
  success: boolean
  timedOut: boolean
  typed: boolean
  durationMs: number
  bytes: number
}

export type SessionEvent = { kind: "status"; status: CliSessionStatus } | { kind: "terminated" }

/**
 * The node id audit rows give a command run in a CLI session: it ran on the control-plane host, not on
 * a fleet node. It passes NodeId's pattern, so `chimera audit --node control-plane` finds them; an
 * enrolled node could also be named so, and the row's detail (`sessionId`) tells the two apart.
 */
export const CONTROL_PLANE_NODE = "control-plane"
