// `chimera web`: the control plane (HTTP API, agent endpoints, later the dashboard) on one port.
import { defineCommand } from "citty"
import { createLogger, displayUrl } from "../../protocol/log.ts"
import { aiSettings } from "../adapters/llm/provider.ts"
import { channelsFromConfig } from "../adapters/notify/index.ts"
import { commandTargetsFromConfig } from "../adapters/ssh/command-targets.ts"
import { databaseUrl, dataDir } from "../config.ts"
import { shq } from "../domain/activation.ts"
import { incidentPolicy } from "../domain/incident-routing.ts"
import { inactiveWarnings } from "../inactive-settings.ts"
import { cliUrlFor, onOwnPort } from "../listen-address.ts"
import { startControlPlane } from "../server.ts"
import { trustSettings } from "../trust.ts"
import { commandConfig } from "./cli-config.ts"
import { controlUrl } from "./credentials.ts"
import { color, say, warn } from "./output.ts"

const log = createLogger("web")

/** A path as a shell word: as it is when it needs no quoting, which is most often. */
const _shellWord = (s: string) => (/^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : shq(s))

export default defineCommand({
  meta: { name: "web", description: "Start the control plane: API, agent endpoints and dashboard" },
  args: {
    host: { type: "string", description: "Address to listen on (default 127.0.0.1)" },
    port: { type: "string", alias: "p", description: "Port (default 8080)" },
  },
  async run({ args }) {
    const layered = commandConfig({
      flags: { web: { host: args.host, port: args.port } },
      flagNames: { "web.host": "--host", "web.port": "--port" },
    })
    const { config } = layered
    for (const warning of inactiveWarnings(layered)) warn(`${color.yellow("warning")} ${warning}\n`)
    const trust = trustSettings(config)
    const ai = aiSettings(config)
    log.info("settings", {
      jwtTtlSeconds: trust.jwtTtlSeconds,
      nodeRotationDays: trust.nodeCredentialRotationDays,
      retentionCommandDays: config.retention.command_days,
      retentionEventDays: config.retention.event_days,
      retentionDeploymentDays: config.retention.deployment_days,
      rateLimits: trust.rateLimits,
      limits: config.limits,
      fleetNodes: Object.keys(config.fleet.nodes),
      incidents: config.incidents,
      // Never the key: only whether one is set.
      ai: ai && {
        provider: ai.provider,
        model: ai.model,
        models: ai.models,
        baseUrl: ai.baseUrl ? displayUrl(ai.baseUrl) : "(the provider's own)",
        key: ai.apiKey ? "set" : "none",
        timeoutSeconds: ai.timeoutMs / 1000,
        questionTtlSeconds: ai.questionTtlSeconds,
        maxContextTokens: ai.maxContextTokens,
        turnLeaseSeconds: ai.turnLeaseSeconds,
      },
    })
    // A taken port is said before anything is made (the address is bound for a moment and let go): a
    // start that fails there must not leave an admin token behind that the next start would only
    // point to, never announce.
    if (config.web.port !== 0)
      onOwnPort(config.web.host, config.web.port, () =>
        Bun.listen({ hostname: config.web.host, port: config.web.port, socket: { data() {} } }).stop(true),
      )
    // Whatever the control plane writes (the database and its -wal and -shm, keys, tokens) is this
    // user's alone from its first byte.
    process.umask(0o077)
    const cp = await startControlPlane({
      host: config.web.host,
      port: config.web.port,
      dataDir: dataDir(),
      databaseUrl: databaseUrl(),
      trust,
      // CLI sessions go to the same tmux server as `chimera run` and `chimera attach`.
      cli: { tmuxSocket: process.env.CHIMERA_TMUX_SOCKET || undefined },
      commandTargets: commandTargetsFromConfig(config),
      retention: {
        commandDays: config.retention.command_days,
        eventDays: config.retention.event_days,
        deploymentDays: config.retention.deployment_days,
      },
      limits: {
        streams: { perUser: config.limits.event_streams_per_user, total: config.limits.event_streams },
        reports: {
          bytes: config.limits.node_report_bytes,
          reports: config.limits.node_reports,
          windowMs: config.limits.node_report_window_seconds * 1000,
          dayBytes: config.limits.node_report_bytes_per_day,
        },
      },
      telemetry: config.telemetry,
      tags: Object.fromEntries(Object.entries(config.fleet.nodes).map(([name, n]) => [name, n.tags])),
      incidents: incidentPolicy(config.incidents),
      notify: channelsFromConfig(config),
      ai,
    })
    say(`Chimera control plane on ${color.bold(cp.url)}\n`)
    // The CLI looks at CHIMERA_URL, or http://127.0.0.1:8080; anywhere else it would reach another
    // control plane or nothing, so say how to point it here. It finds the admin token in its data dir,
    // which a shell without CHIMERA_DATA_DIR looks for in the default one.
    const listening = new URL(cp.url)
    const here = cliUrlFor(listening.hostname, listening.port)
    const settings = [
      ...(controlUrl() !== here ? [`CHIMERA_URL=${here}`] : []),
      ...(cp.adminTokenPath && process.env.CHIMERA_DATA_DIR ? [`CHIMERA_DATA_DIR=${_shellWord(dataDir())}`] : []),
    ]
    if (settings.length > 0) say(`For the CLI in another shell: export ${settings.join(" ")}\n`)
    if (cp.adminTokenPath)
      say(`${cp.adminTokenCreated ? "Created the admin token" : "Admin token"} in ${cp.adminTokenPath} (mode 0600)\n`)
    else say("Admin token: the one in the data dir of the first replica started on this database\n")
    let stopping = false
    const stop = async () => {
      // A second signal while stopping (a second Ctrl-C) ends the process at once.
      if (stopping) {
        warn("stopped without waiting for running work\n")
        process.exit(1)
      }
      stopping = true
      await cp.stop()
      process.exit(0)
    }
    process.on("SIGTERM", stop)
    process.on("SIGINT", stop)
    await new Promise(() => {})
  },
})
