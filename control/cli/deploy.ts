// `chimera deploy --targets T [--config PATH] [--session NAME] [COMMAND]`: build, plan, copy,
// activate with magic rollback, run COMMAND, check health, confirm; record the deployment and, when
// a control plane is reachable, make the new closure each enrolled target's desired one.
//
// Ctrl-C starts nothing further on any node (deploy.ts), but a target confirmed and not yet published
// as its node's desired closure would be switched back by its agent once the deploy's hold lapses. So
// an interrupted deploy first finishes the confirmations and publishes under way (INTERRUPT_GRACE_SECONDS
// at most, or until Ctrl-C again), then says where each target was left (deploy-interrupt.ts), exits 130.
import { defineCommand } from "citty"
import { z } from "zod"
import { repeatedValues } from "../../protocol/cli-flags.ts"
import { SessionId } from "../../protocol/ids.ts"
import { createNix } from "../adapters/nix.ts"
import { DEFAULT_ACTIVATION_TIMEOUT_SECONDS } from "../domain/bounded-switch.ts"
import { deploy } from "../domain/deploy.ts"
import type { DeploymentRecord, TargetResult } from "../domain/deployment-record.ts"
import type { HealthCheck } from "../domain/health-check.ts"
import { commandConfig, flagValue, missingNixConfig } from "./cli-config.ts"
import { keepRecord } from "./cli-store.ts"
import { deployTracker } from "./deploy-interrupt.ts"
import { deployViaControlPlane } from "./deploy-remote.ts"
import { exportDeployTrace } from "./deploy-telemetry.ts"
import { CliError } from "./errors.ts"
import { commandWords } from "./flags.ts"
import { finishOnInterrupt, INTERRUPT_GRACE_SECONDS, spinner } from "./interrupt.ts"
import { color, field, printJson, printTable, say, warn } from "./output.ts"
import { desiredPublisher, reportPublished } from "./publish-desired.ts"
import { ActivationTimeout, ConfirmTimeout, MAX_CONFIRM_SECONDS, MIN_CONFIRM_SECONDS, Seconds } from "./seconds-flag.ts"
import { parseSshFlags, SSH_FLAG_NAMES, sshArgs, sshConfigFlags } from "./ssh-flags.ts"

const DeployFlags = z
  .object({
    config: z.string().min(1),
    session: SessionId,
    "confirm-timeout": ConfirmTimeout,
    "activation-timeout": ActivationTimeout,
    "health-timeout": Seconds("--health-timeout", 1, MAX_CONFIRM_SECONDS),
    "health-cmd": z.array(z.string().min(1, "--health-cmd: expected a command, not an empty one")),
    "health-url": z.array(z.url({ protocol: /^https?$/, error: "--health-url: expected an http(s) URL" })),
  })
  .refine((f) => f["health-timeout"] < f["confirm-timeout"], {
    message:
      "--health-timeout must be shorter than --confirm-timeout (the node rolls back when the confirm timeout passes)",
  })

const bytes = (n: number) =>
  n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`

const STATUS_TEXT: Record<TargetResult["status"], (s: string) => string> = {
  deployed: color.green,
  "up-to-date": color.dim,
  planned: color.bold,
  failed: color.red,
  "rolled-back": color.yellow,
  refused: color.yellow,
}

export function printDeployment(record: DeploymentRecord): void {
  printTable(
    ["TARGET", "STATUS", "BEFORE", "COPY", "TIME", "DETAIL"],
    record.targets.map((t) => [
      t.target,
      STATUS_TEXT[t.status](t.status),
      t.before?.current?.slice(11, 23) ?? "-",
      t.copy ? `${t.copy.missingPaths} paths, ${bytes(t.copy.narBytes)}` : "-",
      `${t.ms} ms`,
      t.error ?? "",
    ]),
  )
  const counts = Object.entries(Object.groupBy(record.targets, (t) => t.status)).map(([k, v]) => `${v?.length} ${k}`)
  say(`\n${record.kind} ${record.id}: ${record.closure} — ${counts.join(", ")}\n`)
}

export default defineCommand({
  meta: { name: "deploy", description: "Deploy a configuration to nodes over SSH, in parallel, with magic rollback" },
  args: {
    command: {
      type: "positional",
      description: "Command to run in nix-shell in the node's session after activation",
      required: false,
    },
    config: {
      type: "string",
      alias: "c",
      description: "Nix file to build, or a built closure such as ./result (default: nix.config_path, default.nix)",
    },
    session: {
      type: "string",
      alias: "s",
      description: "Remote tmux session for COMMAND (default: fleet.session_name, chimera-deploy)",
    },
    "dry-run": { type: "boolean", description: "Build and print the plan, change nothing" },
    force: { type: "boolean", description: "Deploy to targets already up to date too" },
    "confirm-timeout": {
      type: "string",
      description: "Seconds a node waits for confirmation before rolling back",
      default: "30",
    },
    "activation-timeout": {
      type: "string",
      description: `Seconds switch-to-configuration may run before it is stopped and the node rolled back (${MIN_CONFIRM_SECONDS} to ${MAX_CONFIRM_SECONDS})`,
      default: String(DEFAULT_ACTIVATION_TIMEOUT_SECONDS),
    },
    "health-cmd": { type: "string", description: "Health check run on each target (exit 0 passes); repeatable" },
    "health-url": { type: "string", description: "Health check URL fetched from here ({host} = target); repeatable" },
    "health-timeout": { type: "string", description: "Seconds health checks may take to pass", default: "20" },
    "use-substitutes": { type: "boolean", description: "Let targets fetch paths from their substituters" },
    json: { type: "boolean", description: "Print the deployment record as JSON" },
    "via-control-plane": {
      type: "boolean",
      description: "Let the control plane run the deploy with its own SSH key and follow its progress",
    },
    ...sshArgs,
  },
  async run({ args, rawArgs }) {
    const layered = commandConfig({
      flags: {
        ...sshConfigFlags(args),
        nix: { config_path: flagValue(args.config) },
        fleet: { session_name: flagValue(args.session) },
      },
      flagNames: { ...SSH_FLAG_NAMES, "nix.config_path": "--config", "fleet.session_name": "--session" },
    })
    const { config } = layered
    const parsed = DeployFlags.safeParse({
      config: config.nix.config_path,
      session: config.fleet.session_name,
      "confirm-timeout": args["confirm-timeout"],
      "activation-timeout": args["activation-timeout"],
      "health-timeout": args["health-timeout"],
      "health-cmd": repeatedValues(rawArgs, "health-cmd"),
      "health-url": repeatedValues(rawArgs, "health-url"),
    })
    if (!parsed.success) {
      // The two settings the configuration may give are named with where their value came from.
      const named = (i: { path: PropertyKey[]; message: string }) => {
        const path = i.path[0] === "config" ? "nix.config_path" : i.path[0] === "session" ? "fleet.session_name" : null
        return path ? `${path} (from ${layered.setBy(path) ?? "defaults"}): ${i.message}` : i.message
      }
      // The first problem, as parseFlag says it: the timeouts' order is checked on values that parsed.
      throw new CliError(named(parsed.error.issues[0]!), "E_ARG")
    }
    const f = parsed.data
    if (args["via-control-plane"]) {
      const record = await deployViaControlPlane({
        targets: String(args.targets ?? ""),
        config: f.config,
        command: commandWords(args._) || null,
        session: f.session,
        confirmTimeout: f["confirm-timeout"],
        activationTimeout: f["activation-timeout"],
        healthTimeout: f["health-timeout"],
        healthCmd: f["health-cmd"],
        healthUrl: f["health-url"],
        dryRun: Boolean(args["dry-run"]),
        force: Boolean(args.force),
        json: Boolean(args.json),
      })
      if (args.json) printJson(record)
      else printDeployment(record)
      if (record.status !== "succeeded" && record.status !== "planned") process.exitCode = 1
      return
    }
    const ssh = await parseSshFlags(args, config)
    const checks: HealthCheck[] = [
      ...f["health-cmd"].map((command) => ({ kind: "command" as const, command })),
      ...f["health-url"].map((url) => ({ kind: "http" as const, url })),
    ]
    const command = commandWords(args._) || null
    const spin = args.json ? null : spinner()
    spin?.start(`building ${f.config}`)
    const exec = ssh.executor()
    const dryRun = Boolean(args["dry-run"])
    const publisher = dryRun ? null : desiredPublisher()
    const tracker = deployTracker(
      ssh.targets.map((t) => t.name),
      { confirmTimeoutSeconds: f["confirm-timeout"], activationTimeoutSeconds: f["activation-timeout"], publisher },
    )
    const stop = new AbortController()
    const interrupt = finishOnInterrupt({
      seconds: INTERRUPT_GRACE_SECONDS,
      waitingFor() {
        stop.abort()
        const busy = tracker.busy()
        if (busy.length === 0) return null
        return `no further target starts or is sent a confirmation; waiting for ${busy.join(", ")} to answer its confirmation and the control plane to have the new closure as its desired one, so its agent keeps it`
      },
      done: () => tracker.idle(),
      message: () =>
        dryRun
          ? "nothing was changed"
          : `the deploy is not recorded. Where each target is:\n${tracker
              .whereLeft()
              .map((line) => `  ${field(line)}`)
              .join("\n")}`,
    })
    let record: DeploymentRecord
    try {
      record = await deploy(
        {
          targets: ssh.targets,
          configPath: f.config,
          command,
          session: f.session,
          dryRun,
          force: Boolean(args.force),
          confirmTimeoutSeconds: f["confirm-timeout"],
          activationTimeoutSeconds: f["activation-timeout"],
          healthChecks: checks,
          healthTimeoutSeconds: f["health-timeout"],
          useSubstitutes: Boolean(args["use-substitutes"]),
          parallel: ssh.parallel,
        },
        {
          nix: createNix(),
          exec,
          onProgress: (target, phase, message) => {
            // The spinner writes its line as given, around the output layer; the message carries what
            // the node answered (a health check's output), so it is made a safe field first.
            if (spin) spin.message(field(`${target}: ${phase}: ${message}`))
            else if (!args.json) warn(`${target}: ${phase}: ${field(message)}\n`)
          },
          onConfirmed: async (target, closure) => {
            tracker.confirmed(target, closure)
            await publisher?.publish(target, closure)
          },
          onPhase: tracker.onPhase,
          onDone: tracker.onDone,
          signal: stop.signal,
        },
      )
      // Interrupted: the SIGINT handler says where each target is and exits 130.
      if (interrupt.interrupted) return await new Promise<never>(() => {})
    } catch (error) {
      spin?.error("deploy failed")
      throw missingNixConfig(error, layered) ?? new CliError((error as Error).message, "E_DEPLOY")
    } finally {
      interrupt.release()
      await exec.close()
    }
    spin?.stop(`${record.kind} ${record.status}`)
    // The outcome is printed before anything else can fail: nodes have changed either way.
    if (args.json) printJson(record)
    else printDeployment(record)
    if (record.status !== "succeeded" && record.status !== "planned") process.exitCode = 1
    await exportDeployTrace(record)
    if (dryRun) return
    reportPublished(publisher, Boolean(args.json))
    await keepRecord("deployment", (store) => store.saveDeployment(record))
  },
})
