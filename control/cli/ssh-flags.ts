// The flags every SSH-driven command shares (exec, deploy, rollback, generations, watch): which targets,
// how many at once, how long each may take, which key, which known_hosts file, whether new host keys
// may be trusted. They are parsed once here, with zod, into resolved targets and executor options, so
// the commands cannot disagree on defaults or on what a target string means. The key, known_hosts and
// trust settings are the `[ssh]` section's flag layer: a flag wins over CHIMERA_SSH_* and the file.
import { accessSync, constants } from "node:fs"
import { z } from "zod"
import {
  createSshExecutor,
  DEFAULT_PARALLEL,
  DEFAULT_TIMEOUT_MS,
  inventoryFromConfig,
  resolveTargets,
  type SshExecutor,
  type SshExecutorOptions,
  TargetError,
} from "../adapters/ssh/index.ts"
import type { ChimeraConfig } from "../config-schema.ts"
import type { Target } from "../domain/operation-ports.ts"
import { commandConfig } from "./cli-config.ts"
import { CliError } from "./errors.ts"
import { color, warn } from "./output.ts"

export const sshArgs = {
  targets: {
    type: "string",
    alias: "t",
    description:
      "Comma-separated targets: user@host:port, node names from [fleet.nodes], @tag, @all (default: fleet.targets)",
  },
  parallel: { type: "string", description: `Targets in flight at once (default ${DEFAULT_PARALLEL})` },
  timeout: {
    type: "string",
    description: `Seconds per target for connecting and the command (default ${DEFAULT_TIMEOUT_MS / 1000})`,
  },
  identity: {
    type: "string",
    alias: "i",
    description:
      "Private key file (default: ssh-agent, then the host's IdentityFile in ~/.ssh/config, else ~/.ssh/id_*)",
  },
  "known-hosts": {
    type: "string",
    description:
      "known_hosts file to verify host keys against (default: the host's UserKnownHostsFile, else ~/.ssh/known_hosts)",
  },
  "trust-new-hosts": {
    type: "boolean",
    description: "Record unknown host keys in known_hosts (changed keys are still refused)",
  },
} as const

const _count = z
  .string()
  .regex(/^\d+$/, "expected a whole number")
  .transform(Number)
  .pipe(z.number().min(1, "expected at least 1").max(1000, "expected at most 1000"))
const _seconds = z
  .string()
  .regex(/^\d+(\.\d+)?$/, "expected a number of seconds, such as 30 or 2.5")
  .transform(Number)
  .pipe(z.number().gt(0, "expected more than 0 seconds").max(86_400, "expected at most 86400 seconds"))

export const SshFlags = z.object({
  targets: z.string().optional(),
  parallel: _count.optional(),
  timeout: _seconds.optional(),
  identity: z.string().min(1, "expected a file").optional(),
  "known-hosts": z.string().min(1, "expected a file").optional(),
  "trust-new-hosts": z.boolean().optional(),
})
export type SshFlags = z.output<typeof SshFlags>

export interface ParsedSshFlags {
  targets: Target[]
  parallel: number
  timeoutMs: number
  options: SshExecutorOptions
  /** A new executor with these options; the caller closes it. */
  executor(): SshExecutor
}

/** Executor options from parsed flags (defaults are the executor's own). */
export function executorOptions(flags: SshFlags): SshExecutorOptions {
  return {
    identity: flags.identity,
    knownHosts: flags["known-hosts"],
    trustNewHosts: flags["trust-new-hosts"] ?? false,
    parallel: flags.parallel ?? DEFAULT_PARALLEL,
    timeoutMs: flags.timeout === undefined ? DEFAULT_TIMEOUT_MS : Math.round(flags.timeout * 1000),
  }
}

/** The `[ssh]` settings the flags give, as the config's flag layer (absent flags are left out). */
export function sshConfigFlags(args: Record<string, unknown>) {
  return {
    ssh: {
      identity_file: args.identity === undefined ? undefined : String(args.identity),
      known_hosts_file: args["known-hosts"] === undefined ? undefined : String(args["known-hosts"]),
      trust_new_hosts: typeof args["trust-new-hosts"] === "boolean" ? args["trust-new-hosts"] : undefined,
    },
  }
}

export const SSH_FLAG_NAMES = {
  "ssh.identity_file": "--identity",
  "ssh.known_hosts_file": "--known-hosts",
  "ssh.trust_new_hosts": "--trust-new-hosts",
}

/**
 * Targets and executor options from the flags, with `[fleet]` and `[ssh]` from `config`; a command
 * that reads settings of its own loads the configuration once with them and passes it in.
 */
export async function parseSshFlags(
  args: Record<string, unknown>,
  config: ChimeraConfig = commandConfig({ flags: sshConfigFlags(args), flagNames: SSH_FLAG_NAMES }).config,
): Promise<ParsedSshFlags> {
  const parsed = SshFlags.safeParse({
    targets: args.targets,
    parallel: args.parallel,
    timeout: args.timeout,
    identity: args.identity,
    "known-hosts": args["known-hosts"],
    "trust-new-hosts": args["trust-new-hosts"],
  })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new CliError(`--${String(issue?.path[0] ?? "flags")}: ${issue?.message ?? "invalid value"}`, "E_ARG")
  }
  const flags = {
    ...parsed.data,
    identity: config.ssh.identity_file || undefined,
    "known-hosts": config.ssh.known_hosts_file || undefined,
    "trust-new-hosts": config.ssh.trust_new_hosts,
  }
  if (flags.identity) {
    try {
      accessSync(flags.identity, constants.R_OK)
    } catch {
      const by = parsed.data.identity === undefined ? "ssh.identity_file" : "--identity"
      throw new CliError(`${by}: cannot read ${flags.identity}`, "E_ARG")
    }
  }
  let targets: Target[]
  try {
    const inventory = inventoryFromConfig(config)
    const spec = flags.targets ?? inventory.targets
    if (spec.length === 0)
      throw new TargetError(
        "--targets is required (or set fleet.targets in the config), e.g. --targets root@10.0.0.1,web-2,@db, or @all for every node of [fleet.nodes]",
      )
    targets = resolveTargets(spec, inventory)
  } catch (error) {
    if (error instanceof TargetError)
      throw new CliError(configInUse() ? error.message : `${error.message}; ${NO_CONFIG_HINT}`, "E_ARG")
    throw error
  }
  // A bare name that is no node of the inventory is dialled as a host name; when there is no inventory
  // at all, it was most likely meant as a node of a configuration that was not loaded.
  if (!configInUse()) {
    const bare = targets.filter(
      (t) => t.name === t.host && t.host !== "localhost" && /^[A-Za-z][A-Za-z0-9_-]*$/.test(t.host),
    )
    if (bare.length > 0)
      warn(
        `${color.yellow("warning")} ${bare.map((t) => `"${t.name}"`).join(", ")} taken as host name${bare.length > 1 ? "s" : ""}: ${NO_CONFIG_HINT}\n`,
      )
  }
  const options = executorOptions(flags)
  return {
    targets,
    parallel: options.parallel as number,
    timeoutMs: options.timeoutMs as number,
    options,
    executor: () => createSshExecutor(options),
  }
}

/** Whether a configuration file is loaded (CHIMERA_CONFIG_FILE): without one there is no inventory. */
function configInUse(env = process.env): boolean {
  return Boolean(env.CHIMERA_CONFIG_FILE)
}

/** Said beside a name or tag that only a configuration could have resolved. */
const NO_CONFIG_HINT =
  "no configuration is in use (CHIMERA_CONFIG_FILE is unset), so no node names or tags from [fleet.nodes] are known; set it to the file that lists them"
