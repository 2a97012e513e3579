// The control plane's composition root: configuration, the store, the admin token, the fleet use
// cases, the HTTP app and the reachability sweep, wired once. `chimera web` and the tests start it.
import { websocket } from "hono/bun"
import { createLogger } from "../protocol/log.ts"
import { createEventBus } from "./adapters/event-bus.ts"
import { type AiSettings, createProvider } from "./adapters/llm/provider.ts"
import { createNix } from "./adapters/nix.ts"
import { currentProcessInstance } from "./adapters/process-instance.ts"
import { replicaLiveness, replicaName } from "./adapters/replica-liveness.ts"
import { chatStore } from "./adapters/store/chat-store.ts"
import { commandStore } from "./adapters/store/command-store.ts"
import { deploymentStore } from "./adapters/store/deployment-store.ts"
import { eventCursor } from "./adapters/store/event-cursor.ts"
import { storeProbe } from "./adapters/store/health-probe.ts"
import { incidentStore } from "./adapters/store/incident-store.ts"
import { nodeCommands } from "./adapters/store/node-commands.ts"
import { outboxStore } from "./adapters/store/outbox-store.ts"
import { turnEventStore } from "./adapters/store/turn-event-store.ts"
import { turnLeaseStore } from "./adapters/store/turn-lease-store.ts"
import { startTelemetry, type TelemetrySettings } from "./adapters/telemetry/otel.ts"
import { createControlMetrics } from "./adapters/telemetry/prometheus.ts"
import { createTmuxSessions } from "./adapters/tmux.ts"
import { type Chats, createChats } from "./ai/chats.ts"
import { internalApi } from "./ai/internal-api.ts"
import { createApi } from "./api/app.ts"
import { DEFAULT_STREAM_LIMITS, type StreamLimits } from "./api/event-fanout.ts"
import type { Refusals } from "./api/refusals.ts"
import { undeclaredRoutes } from "./api/route-permissions.ts"
import { ChimeraConfig } from "./config-schema.ts"
import { createProviders } from "./domain/cli-providers.ts"
import { endLeftoverCliSessions } from "./domain/cli-session-leftovers.ts"
import { createCliSessions } from "./domain/cli-sessions.ts"
import { type CommandTargets, createCommandService } from "./domain/command-service.ts"
import { createDeliveryWorker, type DeliveryWorkerOptions } from "./domain/delivery-worker.ts"
import { createFleet } from "./domain/fleet.ts"
import { createHealthHistory } from "./domain/health-history.ts"
import { type IncidentPolicy, incidentPolicy } from "./domain/incident-routing.ts"
import { createIncidents } from "./domain/incidents.ts"
import type { ConfiguredChannels } from "./domain/notifications.ts"
import { createNotifyTest } from "./domain/notify-test.ts"
import { type Clock, systemClock } from "./domain/ports.ts"
import { createRelay } from "./domain/relay.ts"
import { createReportQuota, DEFAULT_REPORT_QUOTA, type ReportQuotaSettings } from "./domain/report-quota.ts"
import { onOwnPort } from "./listen-address.ts"
import { openStore } from "./open-store.ts"
import { createFleetOperations } from "./ops/fleet-operations.ts"
import { every } from "./periodic.ts"
import { connectReplicas, peers as replicaPeers } from "./replicas.ts"
import { createTrust, DEFAULT_TRUST, type TrustSettings } from "./trust.ts"
import { dashboardRoutes } from "./web/serve.ts"

const log = createLogger("server")
/** How long a stop waits for running deploys (those through agents end at once) before it goes on. */
const STOP_GRACE_MS = 10_000

export interface ServerOptions {
  host: string
  port: number
  dataDir: string
  databaseUrl: string
  clock?: Clock
  /** How often silent nodes are looked for, in ms. */
  sweepIntervalMs?: number
  /** Sessions, node credential rotation and rate limits (config sections `auth`, `rate_limits`). */
  trust?: Partial<TrustSettings>
  /** CLI sessions: `tmux -L` server name (default: the user's server) and where binaries are looked for. */
  cli?: { tmuxSocket?: string; providerPath?: string }
  /** The nodes the command API reaches over SSH ([fleet.nodes] and [ssh]); none: it answers with how to set them. */
  commandTargets?: CommandTargets | null
  /**
   * `[retention]`: days answered commands, events and finished deployment records are kept (0: forever),
   * and how often they are pruned (ms).
   */
  retention?: { commandDays: number; eventDays?: number; deploymentDays?: number; intervalMs?: number }
  /** `[limits]`: live event streams, and what each node may report per window. */
  limits?: { streams?: Partial<StreamLimits>; reports?: Partial<ReportQuotaSettings> }
  /** `[telemetry]`: with an endpoint, API request and heal spans and the metrics go to that OTLP collector. */
  telemetry?: TelemetrySettings
  /** Each configured node's tags ([fleet.nodes.NAME] tags), for the dashboard's tag filter. */
  tags?: Record<string, string[]>
  /** `[incidents]`: thresholds, paging, quiet hours, per-channel minimum severity (default: the config's defaults). */
  incidents?: Partial<IncidentPolicy>
  /** `[notifications]` and `[itsm]`: where incidents are told (default: nowhere). */
  notify?: ConfiguredChannels
  /** The outbox worker's retries and concurrency (default DEFAULT_DELIVERY). */
  delivery?: Partial<DeliveryWorkerOptions>
  /** `[ai]`: the chat's model provider; null: none, and the chat routes say how to configure one. */
  ai?: AiSettings | null
}

export interface ControlPlane {
  url: string
  /** Null when another replica on the same database made the admin token (it is in its data dir). */
  adminTokenPath: string | null
  adminTokenCreated: boolean
  /** Every route the API serves (middleware excluded), for tests that must cover them all. */
  routes: { method: string; path: string }[]
  /** Refused requests, counted (a metrics endpoint reads `refusals.counts()`). */
  refusals: Refusals
  stop(): Promise<void>
}

export async function startControlPlane(opts: ServerOptions): Promise<ControlPlane> {
  const clock = opts.clock ?? systemClock
  const settings = { ...DEFAULT_TRUST, ...opts.trust }
  const { db, dialect, store, admin, keys, release } = await openStore({
    dataDir: opts.dataDir,
    databaseUrl: opts.databaseUrl,
    clock,
    sessionMaxSeconds: settings.sessionMaxSeconds,
  })

  const bus = createEventBus()
  const history = createHealthHistory(() => clock.now().getTime())
  const peers = replicaPeers()
  const fleet = createFleet({
    store,
    bus,
    clock,
    onHeartbeat: (h) => {
      history.record(h)
      // Made below (it records through the fleet); the API that takes heartbeats listens after that.
      incidents.heartbeat(h)
    },
    peers,
    // In any case: `WEB-1` beside a configured `web-1` would pass for it on a dashboard.
    configured: (id) => (opts.commandTargets?.names() ?? []).some((n) => n.toLowerCase() === id.toLowerCase()),
  })
  const trust = createTrust({
    db,
    dialect,
    dataDir: opts.dataDir,
    store,
    bus,
    clock,
    settings,
    keys,
    credentialRetired: (nodeId) => fleet.credentialRetired(nodeId),
    // The relay is made below; a removal comes only once requests are served. Other replicas' relays
    // are told as of an ack (their fallback read of the store, pollFallbackMs, catches a lost word).
    commandsClosed: (ids) => {
      relay.answeredElsewhere(ids)
      peers.commandsAcked(ids)
    },
  })
  const commands = createCommandService({ targets: opts.commandTargets ?? null, store: commandStore(db), clock })
  const cli = createCliSessions({
    tmux: createTmuxSessions({ socketName: opts.cli?.tmuxSocket }),
    providers: createProviders({ clock, path: opts.cli?.providerPath }),
    clock,
    dataDir: opts.dataDir,
    instance: currentProcessInstance(),
  })
  await endLeftoverCliSessions(cli, trust.audit)
  // With several replicas (PostgreSQL) an ack may land on another one: relays also read the store.
  const relay = createRelay({ fleet, store, clock, pollFallbackMs: dialect === "postgres" ? 1000 : null })
  // The chat is made below, once the API it calls in-process can be; a cancel heard before then has no turn to reach.
  let chats: Chats | null = null
  const replicas = await connectReplicas({
    db,
    dialect,
    bus,
    fleet,
    relay,
    peers,
    turnsCancelled: (chatIds) =>
      void chats?.cancelAsked(chatIds).catch((error: unknown) => log.warn("reading turn leases failed", { error })),
    turnEvents: (chatIds) => chats?.turnEventsStored(chatIds),
  })
  // A removed node's samples are the retired machine's, not those of the next one under its name; every
  // replica holds its own, and hears of a removal on any.
  const unsubscribeHistory = replicas.streams.subscribe((e) => {
    if (e.type === "node.removed" && e.nodeId !== null) history.forget(e.nodeId)
  })
  const deployments = deploymentStore(db)
  const operations = createFleetOperations({
    fleet,
    deployments,
    nix: createNix(),
    targets: opts.commandTargets ?? null,
    clock,
    replica: replicaName(),
    replicaAlive: replicaLiveness(db, dialect),
  })
  const telemetry = opts.telemetry ? await startTelemetry(opts.telemetry, "chimera-control-plane") : null
  const metrics = createControlMetrics(
    {
      listNodes: () => fleet.listNodes(),
      deploymentsFinishedAfter: (at, limit) => deployments.finishedAfter(at, limit),
      since: clock.now().toISOString(),
    },
    telemetry?.sink ?? null,
  )
  const unsubscribeMetrics = bus.subscribe(metrics.event)
  let unsubscribeSpans = () => {}
  if (telemetry) {
    const { recordDeployTrace, recordHealSpan } = await import("./adapters/telemetry/spans.ts")
    const unsubscribe = bus.subscribe((e) => {
      recordHealSpan(telemetry.tracer, e)
      // A deploy this control plane ran; one the CLI ran and reported (`recorded`) sent its own trace.
      if (e.type === "deployment.finished" && e.data.recorded !== true && typeof e.data.id === "string")
        deployments.get(e.data.id).then(
          (record) => record && recordDeployTrace(telemetry.tracer, record),
          (error) => log.warn("deploy trace not recorded", { id: e.data.id, error }),
        )
    })
    unsubscribeSpans = () => void unsubscribe()
    log.info("exporting traces and metrics", { endpoint: opts.telemetry?.endpoint })
  }
  const notify = opts.notify ?? { channels: [], tickets: null }
  const worker = createDeliveryWorker({
    outbox: outboxStore(db),
    channels: notify,
    clock,
    options: opts.delivery,
    // A ticket's id is known once its create is acknowledged: streams and dashboards hear of it then.
    onDelivered: (item, result) => {
      if (item.step !== "opened" || item.channel !== notify.tickets?.name || !result.externalId) return
      fleet
        .note("incident.updated", item.notice.node, {
          incidentId: item.incidentId,
          problem: item.notice.problem,
          severity: item.notice.severity,
          title: item.notice.title,
          ticketId: result.label ?? result.externalId,
        })
        .catch((error) => log.warn("incident event not recorded", { error }))
    },
  })
  const incidents = createIncidents({
    store: incidentStore(db),
    clock,
    policy: { ...incidentPolicy(ChimeraConfig.parse({}).incidents), ...opts.incidents },
    channels: [...notify.channels.map((c) => c.name), ...(notify.tickets ? [notify.tickets.name] : [])],
    currentClosure: async (id) => (await store.getNode(id))?.currentPath ?? null,
    deployment: async (id) => {
      const found = await deployments.reported(id)
      if (!found) return null
      return {
        reportedBy: found.reportedBy,
        closure: found.record.closure,
        targets: found.record.targets.map((t) => ({ target: t.target, status: t.status, error: t.error })),
      }
    },
    isNode: async (name) => Boolean(opts.commandTargets?.resolve(name)) || (await store.getNode(name)) !== null,
    enrolled: async (id) => (await store.getNode(id)) !== null,
    revoked: async (id) => (await store.getNode(id))?.revoked === true,
    note: (type, nodeId, data) => fleet.note(type, nodeId, data),
    wake: () => worker.wake(),
  })
  const unsubscribeIncidents = bus.subscribe((e) => incidents.handle(e))
  const dashboard = { history, nodeCommands: nodeCommands(db), events: eventCursor(db), tags: opts.tags ?? {} }
  // The chat calls the API in-process as the user it acts for, so it needs the app it is part of.
  let appFetch: ((request: Request, env: Record<symbol, unknown>) => Response | Promise<Response>) | null = null
  chats = opts.ai
    ? createChats({
        store: chatStore(db, dialect, clock),
        leases: turnLeaseStore(db, dialect, clock),
        replica: replicaName(),
        cancelElsewhere: (chatId) => peers.turnsCancelled([chatId]),
        feed:
          dialect === "postgres" ? { store: turnEventStore(db), told: (chatId) => peers.turnEvents([chatId]) } : null,
        llm: createProvider(opts.ai),
        settings: opts.ai,
        clock,
        api: internalApi(() => {
          if (!appFetch) throw new Error("the API is not up yet")
          return appFetch
        }),
      })
    : null
  // On SQLite this is the only process on the database: turn leases left by a stopped one are void.
  await chats?.resume(dialect === "sqlite")
  const { app, fetch: serveFetch } = createApi({
    ai: chats,
    dashboard,
    cli,
    fleet,
    // Live streams carry every replica's events (replicas.ts); on SQLite that is this bus.
    bus: replicas.streams,
    trust,
    commands,
    relay,
    operations,
    metrics,
    tracer: telemetry?.tracer ?? null,
    streams: { ...DEFAULT_STREAM_LIMITS, ...opts.limits?.streams },
    storeProbe: storeProbe(opts.databaseUrl, db, dialect),
    incidents,
    notifyTest: createNotifyTest({ configured: notify, clock }),
    reportQuota: createReportQuota({ ...DEFAULT_REPORT_QUOTA, ...opts.limits?.reports }, clock),
  })
  appFetch = (request, env) => app.fetch(request, env)
  const undeclared = undeclaredRoutes(app.routes.filter((r) => r.method !== "ALL"))
  if (undeclared.length > 0)
    log.error("routes without a rule in control/api/route-permissions.ts are refused", { routes: undeclared })
  // Long polls hold a request up to 30 s and the event stream far longer, with a keep-alive each 15 s.
  const server = onOwnPort(opts.host, opts.port, () =>
    Bun.serve({
      hostname: opts.host,
      port: opts.port,
      // The web dashboard's page and its bundled assets (control/web); everything else is the API.
      routes: dashboardRoutes,
      development: false,
      fetch: serveFetch,
      idleTimeout: 60,
      // Frames above 64 KiB get an INVALID_MESSAGE answer (api/cli-messages.ts); above 1 MiB Bun closes (1009).
      websocket: { ...websocket, maxPayloadLength: 1024 * 1024 },
      // Said outright: with `routes` and `development: false`, Bun 1.4.5 binds with SO_REUSEPORT, and a
      // second control plane on the same port (another data dir, a replica) would start and take half
      // of the connections, with no error anywhere.
      reusePort: false,
    }),
  )

  const sweep = every(opts.sweepIntervalMs ?? 1000, "reachability sweep failed", () => fleet.sweepUnreachable())

  // Answered commands (relayed output above all) and events (a failed heal's output) would otherwise
  // grow the database without end.
  const commandDays = opts.retention?.commandDays ?? 30
  const eventDays = opts.retention?.eventDays ?? 90
  const deploymentDays = opts.retention?.deploymentDays ?? 365
  const prune = async () => {
    if (commandDays > 0) await fleet.pruneCommands(commandDays)
    if (eventDays > 0) await fleet.pruneEvents(eventDays)
    // An incident is kept as long as the events it came from.
    if (eventDays > 0) await incidents.prune(eventDays)
    if (deploymentDays > 0) {
      const before = new Date(clock.now().getTime() - deploymentDays * 86_400_000).toISOString()
      const pruned = await deployments.prune(before)
      if (pruned > 0) log.info("pruned old deployment records", { pruned, before })
    }
  }
  const pruning =
    commandDays > 0 || eventDays > 0 || deploymentDays > 0
      ? every(
          opts.retention?.intervalMs ?? 3_600_000,
          "pruning answered commands, old events and deployment records failed",
          prune,
        )
      : null
  void pruning?.run()

  const incidentTick = every(opts.sweepIntervalMs ?? 1000, "incident watches failed", () => incidents.tick())

  const url = `http://${server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname}:${server.port}`
  log.info("control plane listening", { url })
  incidents.setDashboardUrl(url)
  // With SQLite this is the only control plane on the database: leases left by a killed one are void.
  await worker.start(dialect === "sqlite")
  return {
    url,
    adminTokenPath: admin.path,
    adminTokenCreated: admin.created,
    refusals: trust.refusals,
    routes: [...new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`))].map((r) => {
      const [method = "", path = ""] = r.split(" ")
      return { method, path }
    }),
    async stop() {
      sweep.stop()
      pruning?.stop()
      incidentTick.stop()
      unsubscribeIncidents()
      unsubscribeHistory()
      // A turn running a tool ends once the tool has: it gets the deploys' grace, then its lease lapses.
      const turnsEnded = chats?.close(STOP_GRACE_MS)
      unsubscribeMetrics()
      unsubscribeSpans()
      await server.stop(true)
      await operations.settled(STOP_GRACE_MS)
      await turnsEnded
      await incidents.settled()
      await worker.stop()
      await trust.refusals.close()
      await replicas.close()
      keys.close()
      await cli.closeAll()
      await opts.commandTargets?.executor.close()
      // The last export reads the store (nodes by status), so it goes before the store closes.
      await telemetry?.shutdown()
      await store.close()
      release()
    },
  }
}
