// The node agent's composition root (`chimera agent`, compiled alone to dist/chimera-agent): it parses
// the flags, opens the state dir and the report spool, wires the real Nix system into the reconcile
// loop, watches the links, polls as a fallback and, when a control plane is configured, enrolls,
// heartbeats, long-polls for commands and sends the spool, all to one replica of the control plane at a
// time (replicas.ts). Without --control-url (and $CHIMERA_URL) it
// runs standalone: it enforces --desired or the desired closure it stored last, and spools reports.
// It imports nothing from control/ but the configuration loader (control/config.ts, zod and node:
// only), and that only when a config file or a CHIMERA_* variable is there to read (options.ts); no
// HTTP framework, so the compiled agent stays small.
import { rmSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import { defineCommand, renderUsage, runMain } from "citty"
import { unknownFlags, unknownFlagsMessage } from "../protocol/cli-flags.ts"
import { createLogger, displayUrl, setLogLevel } from "../protocol/log.ts"
import { UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { colorIfTaken } from "../protocol/use-color.ts"
import { VERSION } from "../protocol/version.ts"
import { checkUnconfirmedDeploy } from "./boot-check.ts"
import { type CommandLoop, startCommandLoop } from "./command-loop.ts"
import { createControlClient } from "./control-client.ts"
import { gatherControlUrls } from "./control-urls.ts"
import { createCredentialRotator } from "./credential-rotation.ts"
import { enroll, enrollAgain, storedCredential } from "./enrollment.ts"
import { collectHealth } from "./health.ts"
import { type HeartbeatLoop, startHeartbeat } from "./heartbeat.ts"
import { createAgentMetrics, serveAgentMetrics } from "./metrics.ts"
import { createNixSystem } from "./nix-system.ts"
import { type AgentOptions, AgentOptionsError, agentArgs, parseAgentOptions } from "./options.ts"
import { createReconciler, type Reconciler } from "./reconciler.ts"
import { createReplicas, type Replicas, spreadOrder } from "./replicas.ts"
import { type ReportSender, startReportSender } from "./report-sender.ts"
import { openSpool, type ReportInput } from "./spool.ts"
import { openStateDir } from "./state-dir.ts"
import { createSwitchLock } from "./switch-lock.ts"
import { watchLinks } from "./watcher.ts"

const log = createLogger("agent")
/** How often a metrics port held by another program is tried again. */
const METRICS_RETRY_MS = 30_000

export interface AgentHandle {
  readonly reconciler: Reconciler
  /** Stops timers, watchers and loops and flushes what it can of the spool. */
  stop(): Promise<void>
}

export async function runAgent(options: AgentOptions): Promise<AgentHandle> {
  setLogLevel(options.logLevel)
  if (options.joinTokenSource === "flag")
    log.warn(
      "the join token is on the command line, where every local user can read it (ps, /proc/PID/cmdline) for as long as the agent runs; pass it with --join-token-file PATH, --join-token-file - (stdin) or CHIMERA_JOIN_TOKEN",
    )
  const stateDir = openStateDir(options.stateDir)
  // Fail at start, not in a retry loop, when this node can never talk to its control plane.
  const credential =
    options.controlUrls.length > 0 ? storedCredential(stateDir, options.nodeId, options.joinToken) : null
  const spool = openSpool(stateDir.spoolPath, { maxBytes: options.spoolMaxBytes })
  if (!Bun.which("flock"))
    log.warn("flock (util-linux) is not in PATH: heals fail until it is, since they respect NixOS's switch lock")
  const nix = createNixSystem(options, {
    switchLock: createSwitchLock({ waitSeconds: options.switchLockWaitSeconds }),
  })
  const stored = stateDir.readDesired()
  if (options.desired && options.desired !== stored?.closure)
    stateDir.writeDesired({ closure: options.desired, setAt: new Date().toISOString(), source: "flag" })
  let heartbeat: HeartbeatLoop | null = null
  let lastSeen: string | null = null
  const metrics = createAgentMetrics(options.nodeId)
  // Healing never waits on the spool: a report that cannot be written (a full disk) is logged and lost.
  const report = (r: ReportInput) => {
    metrics.report(r)
    try {
      spool.append(r)
    } catch (error) {
      log.error("report not spooled; healing goes on", { type: r.type, error })
    }
  }
  // A reboot inside a push deploy's confirm window is undone before anything else looks at the links.
  await checkUnconfirmedDeploy({
    nix,
    markerPath: UNCONFIRMED_DEPLOY_MARKER,
    bootIdFile: options.bootIdFile,
    report,
  }).catch((error) => log.error("boot check for an unconfirmed deploy failed", { error }))
  // drift.json is the agent's own note, not the operator's: one it cannot read is set aside, not fatal.
  const toldDrift = () => {
    try {
      return stateDir.readDrift()
    } catch (error) {
      log.warn("the drift told before the restart is unreadable; starting without it", { error })
      return null
    }
  }
  const reconciler = createReconciler({
    nix,
    autoHeal: options.autoHeal,
    initialDesired: options.desired ?? stored?.closure ?? null,
    initialDrift: toldDrift(),
    report,
    persistDesired: (closure, source) => stateDir.writeDesired({ closure, setAt: new Date().toISOString(), source }),
    // Only a restart's report of a drift gone rests on it: a disk that refuses the write stops no heal.
    persistDrift: (drift) => {
      try {
        stateDir.writeDrift(drift)
      } catch (error) {
        log.error("the drift told was not kept; after a restart it may not be reported resolved", { error })
      }
    },
    // A heartbeat goes out early when the phase or the links change: a deploy or rollback that holds
    // a drifted agent leaves the phase as it was, and the control plane should still learn at once what runs.
    onPhase: (phase) => {
      const links = reconciler.links
      const seen = `${phase} ${links.profile} ${links.current} ${links.booted}`
      if (seen !== lastSeen && lastSeen !== null) heartbeat?.poke()
      lastSeen = seen
    },
  })
  let metricsServer: ReturnType<typeof serveAgentMetrics> | null = null
  let metricsRetry: ReturnType<typeof setInterval> | undefined
  if (options.metricsListen) {
    const listen = options.metricsListen
    const { host, port } = listen
    /** True once serving; a port held by another program is said and tried again later. */
    const serve = (): boolean => {
      try {
        metricsServer = serveAgentMetrics(listen, metrics, reconciler)
      } catch (error) {
        // Any local user may take a free port before the agent (re)starts: that must not keep the node
        // from healing and heartbeating, so the agent runs on and takes the port when it is free.
        if ((error as { code?: string }).code !== "EADDRINUSE") throw error
        if (metricsRetry === undefined)
          log.error(
            `--metrics-listen: ${host}:${port} is in use by another program (\`ss -ltnp 'sport = :${port}'\` names it); the agent runs on without metrics and tries the port again every ${METRICS_RETRY_MS / 1000} s`,
          )
        return false
      }
      log.info("serving metrics", { url: `${metricsServer.url}metrics` })
      return true
    }
    try {
      if (!serve())
        metricsRetry = setInterval(() => {
          try {
            if (serve()) clearInterval(metricsRetry)
          } catch (error) {
            // Whatever else goes wrong later (the address gone) ends the metrics, never the agent.
            clearInterval(metricsRetry)
            log.error(`--metrics-listen: cannot listen on ${host}:${port}; the agent runs on without metrics`, {
              error,
            })
          }
        }, METRICS_RETRY_MS)
    } catch (error) {
      spool.close()
      throw new AgentOptionsError(`--metrics-listen: cannot listen on ${host}:${port}: ${(error as Error).message}`)
    }
  }
  reconciler.start()
  const watcher = options.watch
    ? watchLinks([options.systemProfile, options.currentSystem, options.bootedSystem], reconciler.request)
    : null
  const poll = setInterval(reconciler.request, options.driftIntervalSeconds * 1000)
  log.info("started", {
    nodeId: options.nodeId,
    version: VERSION,
    desired: reconciler.desired,
    autoHeal: options.autoHeal,
    heartbeatSeconds: options.heartbeatSeconds,
    driftIntervalSeconds: options.driftIntervalSeconds,
    logLevel: options.logLevel,
    controlUrl: options.controlUrls.length > 0 ? options.controlUrls.map(displayUrl).join(",") : null,
  })

  const ac = new AbortController()
  let sender: ReportSender | null = null
  let commands: CommandLoop | null = null
  let replicas: Replicas | null = null
  if (options.controlUrls.length > 0) {
    // What credential.json records as where the node enrolled: every replica it was given.
    const controlUrl = options.controlUrls.join(",")
    let bearer = credential
    const order = options.spreadReplicas ? spreadOrder(options.controlUrls, options.nodeId) : options.controlUrls
    if (options.spreadReplicas && order.length > 1)
      log.info("control plane replicas in this node's own order (--spread-replicas)", {
        order: order.map(displayUrl).join(","),
      })
    replicas = createReplicas(order, { failbackMs: options.failbackSeconds * 1000 })
    const client = createControlClient({
      baseUrl: replicas,
      nodeId: options.nodeId,
      credential: () => bearer,
    })
    void (async () => {
      if (options.joinToken !== null) {
        const input = {
          client,
          stateDir,
          nodeId: options.nodeId,
          joinToken: options.joinToken,
          controlUrl,
          hostname: hostname(),
          signal: ac.signal,
        }
        bearer =
          bearer === null
            ? await enroll(input)
            : await enrollAgain(input, bearer, (next) => {
                bearer = next
              })
      }
      if (bearer === null || ac.signal.aborted) return
      // A restarted agent has its credential at once: its first heartbeat must not tell the control
      // plane a node with no links and a guessed phase (it showed `drifted` until the next one).
      await reconciler.checked
      if (ac.signal.aborted) return
      if (options.joinTokenFileToDelete !== null) forgetJoinTokenFile(options.joinTokenFileToDelete)
      sender = startReportSender(spool, client, { quarantineDir: join(stateDir.path, "quarantine") })
      commands = startCommandLoop(client, reconciler)
      heartbeat = startHeartbeat({
        client,
        intervalSeconds: options.heartbeatSeconds,
        collect: () =>
          collectHealth({
            nodeId: options.nodeId,
            links: reconciler.links,
            desired: reconciler.desired,
            phase: reconciler.phase,
            heartbeatIntervalSeconds: options.heartbeatSeconds,
          }),
        onDesired: (closure, askedAt) => reconciler.setDesired(closure, "heartbeat", askedAt),
        onRotateCredential: createCredentialRotator({
          client,
          stateDir,
          nodeId: options.nodeId,
          controlUrl,
          use: (next) => {
            bearer = next
          },
        }),
      })
    })()
  } else {
    log.warn("no --control-url or CHIMERA_URL: running standalone, reports stay in the spool", {
      spool: stateDir.spoolPath,
    })
  }

  return {
    reconciler,
    async stop() {
      ac.abort()
      replicas?.close()
      clearInterval(poll)
      clearInterval(metricsRetry)
      await metricsServer?.stop(true)
      watcher?.close()
      reconciler.stop()
      heartbeat?.stop()
      await commands?.stop()
      await sender?.stop()
      spool.close()
      log.info("stopped", { nodeId: options.nodeId })
    },
  }
}

/** The join token is single use: once enrolled, its file is only a secret lying around. */
function forgetJoinTokenFile(path: string) {
  try {
    rmSync(path, { force: true })
    log.info("join token file deleted (--delete-join-token-file)", { path })
  } catch (error) {
    log.warn("join token file not deleted; delete it by hand", { path, error })
  }
}

export const agentCommand = defineCommand({
  meta: { name: "chimera-agent", version: VERSION, description: "Start the node agent daemon" },
  args: agentArgs,
  async run({ args, rawArgs }) {
    // Listen before starting: a SIGTERM right after "started" is logged must still be a clean stop.
    const stopRequested = new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve)
      process.once("SIGINT", resolve)
    })
    let agent: AgentHandle
    try {
      const unknown = unknownFlags(agentArgs, rawArgs)
      if (unknown.length > 0) throw new AgentOptionsError(unknownFlagsMessage("chimera-agent", agentArgs, unknown))
      const options = await parseAgentOptions(gatherControlUrls(args, rawArgs))
      // Read once; the programs the agent runs (relayed commands, activations) inherit its environment.
      delete process.env.CHIMERA_JOIN_TOKEN
      agent = await runAgent(options)
    } catch (err) {
      // Configuration errors are the operator's to fix: one line, no stack, exit 1.
      if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("E_")) {
        process.stderr.write(`chimera agent: ${err.message}\n`)
        process.exit(1)
      }
      throw err
    }
    await stopRequested
    await agent.stop()
    process.exit(0)
  },
})

/**
 * The agent's usage, coloured only for a terminal that takes colour: citty's own --help colours it
 * whatever stdout is, and a journal or a pipe would keep the escape codes.
 */
async function printUsage() {
  process.stdout.write(`${colorIfTaken(await renderUsage(agentCommand))}\n`)
}

/**
 * Runtime settings for a daemon that mostly sleeps, read by Bun and JavaScriptCore from the
 * environment as they start (BENCHMARKS.md, "Agent and CLI"):
 * - Bun's own GC timer collects every second while the heap changes, and 16 ms after it grows: made
 *   for servers, it was about a third of the idle agent's CPU (0.10-0.13 % against 0.068 % without
 *   it, heartbeating every 5 s). JavaScriptCore's collections, driven by allocation, still bound the
 *   heap.
 * - The optimising JIT (DFG) is off: its compiler's code pages were about 2.5 MB of the agent's RSS
 *   (52 MB against 49-50 without it; the target is 50). The agent's hardest JavaScript, loading a
 *   spool of 20,000 reports, takes 0.6 s instead of 0.2 s; writing and draining it, 5-17 % longer.
 * The compiled agent sets what the operator has not, executes itself again once before it does
 * anything, and takes its own settings back out so the programs it runs do not inherit them.
 */
const RUNTIME_SETTINGS: Record<string, string> = { BUN_GC_TIMER_DISABLE: "1", BUN_JSC_useDFGJIT: "false" }
/** Names the settings the agent added itself, for the second start to take back out. */
const SET_BY_AGENT = "CHIMERA_AGENT_RUNTIME_SET"

function withRuntimeSettings(): void {
  const set = process.env[SET_BY_AGENT]
  if (set !== undefined) {
    for (const name of set.split(",")) delete process.env[name]
    delete process.env[SET_BY_AGENT]
    return
  }
  // Only the compiled agent: from source, argv[1] is the script, and tests run it under their own Bun.
  if (!Bun.main.startsWith("/$bunfs/") || typeof process.execve !== "function") return
  // An operator's own BUN_GC_TIMER_* (the interval asks for the timer) or JIT setting is left as given.
  const gcChosen = process.env.BUN_GC_TIMER_DISABLE !== undefined || process.env.BUN_GC_TIMER_INTERVAL !== undefined
  const missing = Object.keys(RUNTIME_SETTINGS).filter((name) =>
    name.startsWith("BUN_GC_TIMER") ? !gcChosen : process.env[name] === undefined,
  )
  if (missing.length === 0) return
  const env: Record<string, string | undefined> = { ...process.env, [SET_BY_AGENT]: missing.join(",") }
  for (const name of missing) env[name] = RUNTIME_SETTINGS[name]
  try {
    process.execve(process.execPath, [process.argv0, ...process.argv.slice(2)], env)
  } catch (error) {
    log.debug("running with Bun's default runtime settings: could not execute the agent again", { error })
  }
}

if (import.meta.main) {
  withRuntimeSettings()
  const argv = process.argv.slice(2)
  if (argv.includes("--help") || argv.includes("-h")) await printUsage()
  else runMain(agentCommand)
}
