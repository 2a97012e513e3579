// `chimera watch --targets T [--config PATH] [--interval SEC | --schedule CRON] [--session NAME] [--once]`:
// agentless drift detection and healing. `--once` is for cron and systemd timers: exit 0 when every
// target is congruent, 1 when drift was found and healed, 2 when it could not be healed, 78 (EX_CONFIG)
// when its configuration failed before any node was checked (never 1, which reads "healed"). A heal is a
// deploy: on an enrolled node it makes the configuration's closure the desired one, as deploy does,
// so the node's agent does not heal it back.

import { existsSync } from "node:fs"
import { defineCommand, type ParsedArgs } from "citty"
import { CronJob, validateCronExpression } from "cron"
import { SessionId, type StorePath } from "../../protocol/ids.ts"
import { createLogger } from "../../protocol/log.ts"
import { createNix, NixError } from "../adapters/nix.ts"
import { ConfigError } from "../config.ts"
import { intervalToCron, type WatchPass, watchOnce } from "../domain/watch.ts"
import { commandConfig, flagValue, missingNixConfig } from "./cli-config.ts"
import { keepRecord, openCliStore } from "./cli-store.ts"
import { CliError, CONFIG_STATUS, ExitWith } from "./errors.ts"
import { color, field, jsonLine, printJson, say, warn } from "./output.ts"
import { desiredPublisher, reportPublished } from "./publish-desired.ts"
import { ConfirmTimeout, secondsFlag } from "./seconds-flag.ts"
import { parseSshFlags, SSH_FLAG_NAMES, sshArgs, sshConfigFlags } from "./ssh-flags.ts"

const log = createLogger("watch")

/** One pass: with --json, one document for --once, else one line a pass (JSON lines, as `events --follow`). */
function report(pass: WatchPass, json: boolean, once: boolean) {
  if (json) return once ? printJson(pass) : say(`${jsonLine(pass)}\n`)
  for (const c of pass.congruence) {
    const what =
      c.status === "congruent"
        ? color.green("congruent")
        : c.status === "drifted"
          ? color.yellow(`drifted (${c.kinds.join(", ")})`)
          : color.red(`unreachable: ${field(c.error ?? "")}`)
    const healed = pass.heal?.targets.find((t) => t.target === c.target.name)
    say(
      `${pass.at}  ${c.target.name}  ${what}${healed ? `  → ${healed.status}${healed.error ? `: ${field(healed.error)}` : ""}` : ""}\n`,
    )
  }
}

/** `watch --once`'s status when its pass did not run: nothing was checked, so nothing was healed. */
const NOT_HEALED = 2

/**
 * A failure of `watch --once` with a status cron cannot read as an outcome: CONFIG_STATUS for its
 * configuration (the chimera configuration, the Nix file missing or not building), NOT_HEALED for any
 * other; a usage mistake still exits 64 (cli/run.ts).
 */
function _onceFailure(error: unknown): ExitWith {
  const config =
    error instanceof ConfigError ||
    error instanceof NixError ||
    (error instanceof CliError && error.code === "E_CONFIG")
  return new ExitWith(error, config ? CONFIG_STATUS : NOT_HEALED)
}

const watchArgs = {
  config: {
    type: "string",
    alias: "c",
    description:
      "Nix file whose build is the expected closure, or a built one such as ./result (default: nix.config_path, default.nix)",
  },
  // No short form: `-i` is the key file, as on every SSH command and in ssh itself.
  interval: { type: "string", description: "Seconds between checks (default: watch.interval_seconds, 10)" },
  schedule: { type: "string", description: "A cron expression instead of --interval (6 fields: with seconds)" },
  session: {
    type: "string",
    alias: "s",
    description: "Session name recorded for heals (default: watch.session_name, chimera-watch)",
  },
  once: {
    type: "boolean",
    description: `Check once and exit 0 (congruent), 1 (healed), 2 (not healed) or ${CONFIG_STATUS} (the configuration or Nix file failed)`,
  },
  "confirm-timeout": { type: "string", description: "Seconds a healed node waits for confirmation", default: "30" },
  json: { type: "boolean", description: "Print each pass as JSON, one a line (with --once: the one pass)" },
  ...sshArgs,
} as const

/**
 * `-i` was watch's short form of --interval before it became the key file, as it is everywhere else:
 * a job still written `watch -i 30` is told so, rather than told that no key file named 30 exists.
 */
function _refuseIntervalAsIdentity(identity: string | undefined) {
  if (identity === undefined || !/^\d+(\.\d+)?$/.test(identity) || existsSync(identity)) return
  throw new CliError(
    `-i is --identity (an SSH key file, as with ssh -i), and there is no file ${identity}; for seconds between checks, write --interval ${identity}`,
    "E_ARG",
  )
}

async function _watch(args: ParsedArgs<typeof watchArgs>) {
  _refuseIntervalAsIdentity(args.identity)
  const layered = commandConfig({
    flags: {
      ...sshConfigFlags(args),
      nix: { config_path: flagValue(args.config) },
      watch: { interval_seconds: flagValue(args.interval), session_name: flagValue(args.session) },
    },
    flagNames: {
      ...SSH_FLAG_NAMES,
      "nix.config_path": "--config",
      "watch.interval_seconds": "--interval",
      "watch.session_name": "--session",
    },
  })
  const { config } = layered
  const session = SessionId.safeParse(config.watch.session_name)
  if (!session.success)
    throw new CliError(
      `watch.session_name (from ${layered.setBy("watch.session_name") ?? "defaults"}): ${session.error.issues[0]?.message}`,
      "E_ARG",
    )
  const ssh = await parseSshFlags(args, config)
  const confirm = secondsFlag(ConfirmTimeout, args["confirm-timeout"])
  const interval = config.watch.interval_seconds
  const cronTime = args.schedule ?? intervalToCron(interval)
  if (!cronTime)
    throw new CliError(
      `watch.interval_seconds ${interval} (from ${layered.setBy("watch.interval_seconds") ?? "defaults"}): expected seconds that divide a minute, an hour or a day; use --schedule for others`,
      "E_ARG",
    )
  // Checked before any pass, with --once too: a schedule the job's line gives and cannot use is its mistake.
  const schedule = args.schedule === undefined ? null : validateCronExpression(args.schedule)
  if (schedule && !schedule.valid) throw new CliError(`--schedule: ${schedule.error?.message}`, "E_ARG")
  const store = await openCliStore()
  const opts = {
    targets: ssh.targets,
    configPath: config.nix.config_path,
    session: session.data,
    parallel: ssh.parallel,
    confirmTimeoutSeconds: confirm,
    healthChecks: [],
    healthTimeoutSeconds: Math.max(1, confirm - 5),
  }
  const pass = async () => {
    const exec = ssh.executor()
    try {
      const publisher = desiredPublisher()
      const onConfirmed = publisher
        ? (target: string, closure: StorePath) => publisher.publish(target, closure)
        : undefined
      const result = await watchOnce(opts, { nix: createNix(), exec, onConfirmed }).catch((error: unknown) => {
        throw missingNixConfig(error, layered) ?? error
      })
      report(result, Boolean(args.json), Boolean(args.once))
      // Heals only: a pass that changed nothing has nothing to say about desired closures.
      if (result.heal) reportPublished(publisher, Boolean(args.json))
      const heal = result.heal
      if (heal) await keepRecord("heal", (s) => s.saveDeployment(heal), store)
      return result
    } finally {
      await exec.close()
    }
  }
  log.info("watching", {
    targets: ssh.targets.map((t) => t.name),
    config: opts.configPath,
    session: opts.session,
    ...(args.schedule ? { schedule: cronTime } : { intervalSeconds: interval }),
  })
  if (args.once) {
    const result = await pass().finally(() => store.close())
    process.exitCode = result.exitCode || process.exitCode
    return
  }
  let running = false
  const job = CronJob.from({
    cronTime,
    start: true,
    runOnInit: true,
    onTick: async () => {
      if (running) {
        // Said as the passes' own lines are, for the person watching; the log keeps it at debug.
        log.debug("previous pass still running; skipping this tick")
        return warn(`${color.yellow("warning")} the previous pass is still running; this tick is skipped\n`)
      }
      running = true
      try {
        await pass()
      } catch (error) {
        log.debug("watch pass failed", { error })
        warn(`${color.red("error")} ${field((error as Error).message)}\n`)
      } finally {
        running = false
      }
    },
  })
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve)
    process.once("SIGINT", resolve)
  })
  job.stop()
  await store.close()
}

export default defineCommand({
  meta: { name: "watch", description: "Detect and heal drift on nodes over SSH, once or on a schedule" },
  args: watchArgs,
  async run({ args }) {
    if (!args.once) return _watch(args)
    await _watch(args).catch((error: unknown) => {
      throw _onceFailure(error)
    })
  },
})
