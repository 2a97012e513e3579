// The wire contract between a node agent and the control plane: the agent enrols, reports its health
// and its drift, and fetches and acknowledges the commands that heal it.
//
//   POST /api/agent/enroll                        Bearer <join token>   EnrollRequest   -> EnrollResponse (201)
//   POST /api/agent/:nodeId/heartbeat             Bearer <credential>   NodeHealth      -> HeartbeatResponse
//   POST /api/agent/:nodeId/reports               Bearer <credential>   ReportBatch     -> ReportAck
//   GET  /api/agent/:nodeId/commands?wait=SEC     Bearer <credential>                   -> CommandList (long poll)
//                                                 (`cancel`: ids of `run` commands this agent was given, to stop)
//   POST /api/agent/:nodeId/commands/:id/ack      Bearer <credential>   CommandAck      -> { ok: true }
//   POST /api/agent/:nodeId/credential            Bearer <credential>                   -> RotatedCredential (201)
//
// Reports (drift and heal) are spooled by the agent before they are sent and carry a per-node
// sequence number; the control plane stores each (node, seq) once and answers with the highest
// sequence it has made durable, so a replay after a crash on either side is neither lost nor doubled.
import { z } from "zod"
import { EnrolledNodeId, NodeId, StorePath } from "./ids.ts"
import { hasControlCharacters } from "./terminal-text.ts"

/**
 * Seconds between heartbeats, as the agent is given it and the node reports it. Three missed make the
 * node unreachable: under half a second that is jitter, the node would flap at every sweep (and spend
 * its rate limit on heartbeats), and PostgreSQL's REAL refused 1e-50, failing the batch it was in.
 */
export const HeartbeatInterval = z.number().min(0.5, "expected at least 0.5 seconds").max(86_400)

export const AgentPhase = z.enum([
  "no-desired", // the control plane has not set a closure for this node yet
  "congruent",
  "drifted",
  "healing",
  "heal-failed",
  "missing-closure",
])
export type AgentPhase = z.infer<typeof AgentPhase>

/** The three links an agent reads, resolved to store paths (null when a link is absent). */
export const SystemLinks = z
  .object({
    profile: StorePath.nullable(),
    current: StorePath.nullable(),
    booted: StorePath.nullable(),
  })
  .strict()
export type SystemLinks = z.infer<typeof SystemLinks>

/**
 * What an agent says it runs, shown to admins on their terminals: a version, never free text (an
 * escape sequence here once retitled and cleared the admin's terminal).
 */
export const AgentVersion = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}$/,
    "expected a version of 1-64 letters, digits, dots, pluses, tildes, dashes or underscores, e.g. 0.4.1",
  )

/** A node's host name as its kernel reports it: any text but control and format characters. */
export const HostName = z
  .string()
  .max(255)
  .refine((s) => !hasControlCharacters(s), "expected a host name without control or format characters")

export const NodeHealth = z
  .object({
    nodeId: NodeId,
    agentVersion: AgentVersion,
    hostname: HostName,
    at: z.iso.datetime(),
    uptimeSeconds: z.number().nonnegative(),
    load: z.tuple([z.number().nonnegative(), z.number().nonnegative(), z.number().nonnegative()]),
    memory: z
      .object({ totalBytes: z.number().int().nonnegative(), availableBytes: z.number().int().nonnegative() })
      .strict(),
    disk: z
      .object({
        path: z.string().max(4096),
        totalBytes: z.number().int().nonnegative(),
        freeBytes: z.number().int().nonnegative(),
      })
      .strict(),
    system: SystemLinks,
    desired: StorePath.nullable(),
    phase: AgentPhase,
    heartbeatIntervalSeconds: HeartbeatInterval,
  })
  .strict()
export type NodeHealth = z.infer<typeof NodeHealth>

export const DriftKind = z.enum(["profile-drift", "runtime-drift", "missing-closure"])
export type DriftKind = z.infer<typeof DriftKind>

const reportBase = { seq: z.number().int().positive(), at: z.iso.datetime() }
/**
 * How long a heal took, as the agent measured it: at most a week. The control plane adds every one
 * into the fleet's heal-duration metric, and one report of 1e308 made its sum useless for good.
 */
const HealDurationMs = z
  .number()
  .nonnegative()
  .max(7 * 86_400_000, "expected at most a week in milliseconds")
/**
 * Free text a node sends (output, errors): a NUL becomes U+FFFD. PostgreSQL's TEXT refuses NUL, and
 * the write holding it failed whole: a relayed `cat /proc/1/cmdline` could never be acknowledged.
 */
const Text = (max: number) =>
  z
    .string()
    .max(max)
    .transform((s) => (s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s))
const Output = Text(65_536)

export const AgentReport = z.discriminatedUnion("type", [
  z
    .object({
      ...reportBase,
      type: z.literal("drift.detected"),
      data: z
        .object({
          // Each kind once: unbounded, one report held 2.7 million and an incident's message 45 MB.
          kinds: z
            .array(DriftKind)
            .min(1)
            .max(DriftKind.options.length)
            .refine((k) => new Set(k).size === k.length, "each drift kind at most once"),
          desired: StorePath,
          system: SystemLinks,
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      ...reportBase,
      type: z.literal("drift.resolved"),
      data: z.object({ desired: StorePath, system: SystemLinks }).strict(),
    })
    .strict(),
  z
    .object({
      ...reportBase,
      type: z.literal("heal.started"),
      data: z.object({ desired: StorePath, attempt: z.number().int().positive() }).strict(),
    })
    .strict(),
  z
    .object({
      ...reportBase,
      type: z.literal("heal.succeeded"),
      data: z.object({ desired: StorePath, attempt: z.number().int().positive(), durationMs: HealDurationMs }).strict(),
    })
    .strict(),
  z
    .object({
      ...reportBase,
      type: z.literal("heal.failed"),
      data: z
        .object({
          desired: StorePath,
          attempt: z.number().int().positive(),
          durationMs: HealDurationMs,
          error: Text(4096),
          output: Output,
          retryInMs: z.number().int().nonnegative().nullable(),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      ...reportBase,
      type: z.literal("reboot.required"),
      data: z.object({ booted: StorePath.nullable(), current: StorePath.nullable() }).strict(),
    })
    .strict(),
  // The agent's own bookkeeping, so that what it could not deliver is never lost without a word: a
  // spool over its size cap compacted (oldest drift and progress reports first; heal outcomes only
  // when nothing else is left, counted in `criticalDropped`), and a report the control plane refused
  // for good (413/422), set aside on the node with the answer.
  z
    .object({
      ...reportBase,
      type: z.literal("reports.compacted"),
      data: z
        .object({
          fromSeq: z.number().int().positive(),
          toSeq: z.number().int().positive(),
          dropped: z.number().int().positive(),
          // Report types: a few dozen at most.
          byType: z
            .record(z.string().max(64), z.number().int().positive())
            .refine((r) => Object.keys(r).length <= 64, "at most 64 report types"),
          criticalDropped: z.number().int().nonnegative(),
          maxBytes: z.number().int().positive(),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      ...reportBase,
      type: z.literal("report.quarantined"),
      data: z
        .object({
          quarantinedSeq: z.number().int().positive(),
          quarantinedType: z.string().max(64),
          status: z.number().int().min(400).max(499),
          answer: z.string().max(4096),
          file: z.string().max(4096),
        })
        .strict(),
    })
    .strict(),
  // A reboot inside a deploy's confirm window: the generation nobody confirmed was undone at boot.
  z
    .object({
      ...reportBase,
      type: z.literal("boot.rolled-back"),
      data: z
        .object({
          unconfirmed: StorePath,
          restored: StorePath,
          success: z.boolean(),
          error: Text(4096).optional(),
        })
        .strict(),
    })
    .strict(),
])
export type AgentReport = z.infer<typeof AgentReport>
export type AgentReportType = AgentReport["type"]

export const ReportBatch = z.object({ reports: z.array(AgentReport).min(1).max(500) }).strict()
export type ReportBatch = z.infer<typeof ReportBatch>

// The control plane's answers (ReportAck, EnrollResponse, HeartbeatResponse, RotatedCredential) are read
// leniently, unlike what agents send: a field a newer control plane adds is dropped, not an error, so
// agents keep working while a fleet is upgraded control plane first.
export const ReportAck = z.object({ ackedSeq: z.number().int().nonnegative() })
export type ReportAck = z.infer<typeof ReportAck>

/**
 * `credentialHash`: the SHA-256 (hex) of a node credential the agent made and stored before asking.
 * The control plane records that hash, answers without a credential, and takes a repeat of the same
 * enrolment (same join token, node and hash) as done: an answer lost on the way (a timeout, a reset)
 * then never locks the node out with a used join token. Without it the control plane makes the
 * credential and sends it, once.
 */
export const EnrollRequest = z
  .object({
    nodeId: EnrolledNodeId,
    hostname: HostName.default(""),
    agentVersion: AgentVersion,
    credentialHash: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "expected a SHA-256 in lower-case hex")
      .optional(),
  })
  .strict()
export type EnrollRequest = z.infer<typeof EnrollRequest>

export const EnrollResponse = z.object({ nodeId: NodeId, credential: z.string().min(32).optional() })
export type EnrollResponse = z.infer<typeof EnrollResponse>

/** `rotateCredential`: fetch a new credential (POST /api/agent/:nodeId/credential) and use it from then on. */
export const HeartbeatResponse = z.object({
  desired: StorePath.nullable(),
  rotateCredential: z.literal(true).optional(),
})
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>

/** A rotated credential: pending until the agent first uses it, when the old one stops working. */
export const RotatedCredential = z.object({ nodeId: NodeId, credential: z.string().min(32) })
export type RotatedCredential = z.infer<typeof RotatedCredential>

/** The longest shell command a `run` command carries, in characters (as POST /api/run-command). */
export const MAX_RUN_COMMAND_CHARS = 16_384
/** The longest a `run` command may run before the agent kills it, in seconds. */
export const MAX_RUN_TIMEOUT_SECONDS = 3600

/**
 * A command the control plane relays to one agent. `activate` makes `closure` the node's desired
 * system. `run` runs `command` with `/bin/sh -c` as the agent's user (root on a node), stdin closed,
 * killed with its process group after `timeoutSeconds`. Agents that predate `run` ack it as failed.
 */
export const AgentCommand = z.discriminatedUnion("kind", [
  z
    .object({
      id: z.string().min(1).max(64),
      kind: z.literal("activate"),
      closure: StorePath,
      createdAt: z.iso.datetime(),
    })
    .strict(),
  z
    .object({
      id: z.string().min(1).max(64),
      kind: z.literal("run"),
      command: z.string().min(1).max(MAX_RUN_COMMAND_CHARS),
      timeoutSeconds: z.number().int().min(1).max(MAX_RUN_TIMEOUT_SECONDS),
      createdAt: z.iso.datetime(),
    })
    .strict(),
])
export type AgentCommand = z.infer<typeof AgentCommand>
export type RunCommand = Extract<AgentCommand, { kind: "run" }>

/**
 * The long poll's answer. `cancel` (absent when empty) names `run` commands already handed to this
 * agent whose caller cancelled them: the agent kills each one's process group (SIGTERM, SIGKILL after a
 * grace) and acks it with what it wrote so far. A cancel is said again each minute while its command
 * is unacknowledged, so a lost answer costs no cancel. Agents read this answer leniently and ignore a
 * field they do not know: one that predates `cancel` runs the command to its end or its timeout.
 */
export const CommandList = z
  .object({ commands: z.array(AgentCommand), cancel: z.array(z.string().min(1).max(64)).optional() })
  .strict()
export type CommandList = z.infer<typeof CommandList>

/**
 * `output` is a `run` command's stdout (an `activate`'s whole output); `exitCode` (null when the
 * process was killed or never started), `stderr` and `timedOut` come with `run` acks only.
 */
export const CommandAck = z
  .object({
    success: z.boolean(),
    output: Output.default(""),
    exitCode: z.number().int().min(0).max(255).nullable().optional(),
    stderr: Output.optional(),
    timedOut: z.boolean().optional(),
  })
  .strict()
export type CommandAck = z.infer<typeof CommandAck>

/**
 * The longest a push deploy may hold an agent off healing (/run/chimera/deploy-hold): the longest
 * confirm timeout, an hour, plus a minute. The agent ignores any hold further out.
 */
export const MAX_DEPLOY_HOLD_SECONDS = 3600 + 60

/** The longest a command long-poll is held open, in seconds. */
export const MAX_COMMAND_WAIT_SECONDS = 30
