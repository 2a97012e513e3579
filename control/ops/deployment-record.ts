// What a deploy, rollback or congruence request through the API looks like, and the record a CLI that
// ran a deploy itself (with an operator's own SSH keys) hands to the control plane to keep. Parsed at
// the API's edge; the record's shape is DeploymentRecord's (control/domain/deploy.ts), bounded so a
// caller cannot store megabytes per target.
import { z } from "zod"
import { SessionId, StorePath } from "../../protocol/ids.ts"
import { DEFAULT_ACTIVATION_TIMEOUT_SECONDS } from "../domain/bounded-switch.ts"

/** A [fleet.nodes] name, `@tag`, or an enrolled node id. Never an address: the API dials only named nodes. */
export const TargetName = z.string().regex(/^@?[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
  error: "expected a node name from [fleet.nodes], an enrolled node id, or @tag (addresses are not taken here)",
})
const Targets = z
  .array(TargetName, { error: "expected a list of targets" })
  .min(1, { error: "name at least one target" })
  .max(1000)

const ConfigPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes("\u0000"), { error: "a path cannot hold a NUL byte" })
const Command = z
  .string()
  .min(1)
  .max(16_384)
  .refine((c) => !c.includes("\u0000"), { error: "a command cannot hold a NUL byte" })

const onlyOneClosure = (b: { config_path?: string; closure?: string }) => !(b.config_path && b.closure)
const ONE_CLOSURE = { error: "give config_path or closure, not both" }

/** How long a switch may run on the node before it is stopped: a deploy's, and a rollback's. */
const ActivationTimeoutSeconds = z.number().int().min(5).max(3600).default(DEFAULT_ACTIVATION_TIMEOUT_SECONDS)

export const DeployRequestBody = z
  .object({
    targets: Targets,
    config_path: ConfigPath.optional(),
    closure: StorePath.optional(),
    command: Command.nullable().optional(),
    session: SessionId.default("chimera-deploy" as SessionId),
    health_cmd: z.array(Command).max(20).default([]),
    health_url: z
      .array(z.url({ protocol: /^https?$/, error: "expected an http(s) URL" }))
      .max(20)
      .default([]),
    health_timeout_seconds: z.number().int().min(1).max(3600).default(20),
    confirm_timeout_seconds: z.number().int().min(2).max(3600).default(30),
    activation_timeout_seconds: ActivationTimeoutSeconds,
    dry_run: z.boolean().default(false),
    force: z.boolean().default(false),
  })
  .strict()
  .refine(onlyOneClosure, ONE_CLOSURE)
  .refine((b) => b.config_path || b.closure, {
    error: "give config_path (a Nix file to build) or closure (a store path)",
  })
  .refine((b) => !b.command || b.config_path, {
    error: "a command runs in nix-shell of the configuration: give config_path with it",
  })
  .refine((b) => b.health_timeout_seconds < b.confirm_timeout_seconds, {
    error: "health_timeout_seconds must be shorter than confirm_timeout_seconds (the node rolls back when it passes)",
  })

/** A generation number as typed (nix-env counts from 1); nine digits at most, so none reaches nix-env as `1e+23`. */
export const GenerationText = z
  .string()
  .regex(/^[1-9]\d{0,8}$/, "expected a generation number (see chimera generations)")

export const RollbackRequestBody = z
  .object({
    targets: Targets,
    generation: z
      .union([z.number().int().min(1).max(999_999_999), GenerationText.transform(Number)])
      .nullable()
      .optional(),
    activation_timeout_seconds: ActivationTimeoutSeconds,
  })
  .strict()

export const CongruenceRequestBody = z
  .object({ targets: Targets, config_path: ConfigPath.optional(), closure: StorePath.optional() })
  .strict()
  .refine(onlyOneClosure, ONE_CLOSURE)

/**
 * A reported log line or error: a NUL becomes U+FFFD, as in a node's own reports. PostgreSQL's TEXT
 * refuses NUL, and a failed target's incident (its message quotes the error) was never opened.
 */
const Line = z
  .string()
  .max(4096)
  .transform((s) => (s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s))
const Timing = z
  .object({
    phase: z.enum(["plan", "copy", "activate", "command", "health", "confirm"]),
    startedAt: z.string().max(40),
    ms: z.number().nonnegative(),
  })
  .strict()
const SystemStateShape = z
  .object({ profile: StorePath.nullable(), current: StorePath.nullable(), booted: StorePath.nullable() })
  .strict()

export const DeploymentRecordBody = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, { error: "expected an id of letters, digits and -" }),
    kind: z.enum(["deploy", "heal"]),
    createdAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    configPath: ConfigPath,
    closure: StorePath,
    hash: z.string().regex(/^[0-9a-z]{32}$/),
    isSystem: z.boolean(),
    command: Command.nullable(),
    session: z.string().max(64),
    status: z.enum(["succeeded", "failed", "partial", "planned"]),
    targets: z
      .array(
        z
          .object({
            // Looked up among the nodes to open its incidents: a NUL failed the look-up on PostgreSQL,
            // and with it every other target's incident.
            target: z
              .string()
              .min(1)
              .max(300)
              .refine((t) => !t.includes("\0"), { error: "a target cannot hold a NUL byte" }),
            status: z.enum(["planned", "up-to-date", "deployed", "failed", "rolled-back", "refused"]),
            before: SystemStateShape.nullable(),
            copy: z
              .object({ missingPaths: z.number().int().nonnegative(), narBytes: z.number().nonnegative() })
              .strict()
              .nullable(),
            previous: z.object({ generation: z.number().int(), path: StorePath }).strict().nullable(),
            error: Line.nullable(),
            timings: z.array(Timing).max(20),
            startedAt: z.string().max(40),
            ms: z.number().nonnegative(),
            log: z.array(Line).max(200),
          })
          .strict(),
      )
      .min(1)
      .max(1000)
      // A target once: repeated, one record opened and resolved 500 incidents on one node.
      .refine((ts) => new Set(ts.map((t) => t.target)).size === ts.length, "each target at most once"),
  })
  .strict()
