// The incident use cases: fleet events in, incidents and their deliveries out. Events from the bus
// are queued and handled one at a time, off the path that published them (a heartbeat that flips a
// node reachable never waits for an incident to be written); a tick turns watches whose threshold has
// passed into incidents. Every change goes to the store with its deliveries in one transaction, then
// wakes the delivery worker and becomes an `incident.*` fleet event (the SSE stream, the dashboard).
// A heartbeat that says the node runs the closure an open heal-failed or missing-closure incident was
// about resolves it, through the same queue (incident-heartbeats.ts).
// A deployment the control plane ran speaks for its targets. One a caller reported (a deploy the CLI
// ran with an operator's keys, POST /api/deployments/records) is that caller's word, so it speaks only
// for targets that are this control plane's nodes (enrolled, or named in [fleet.nodes]; any other
// name is kept in the record and raises nothing), rewrites only incidents its own principal's records
// opened, resolves only incidents records opened (never one the control plane opened or saw fail
// itself), and past REPORTED_PER_HOUR incidents an hour from one principal the rest are recorded, told nobody.
import type { NodeHealth } from "../../protocol/agent.ts"
import { createLogger, redactText } from "../../protocol/log.ts"
import { terminalLine, terminalText } from "../../protocol/terminal-text.ts"
import { conflict, notFound } from "./errors.ts"
import type { ControlEventType, FleetEvent } from "./events.ts"
import { awaitingCongruence } from "./incident-heartbeats.ts"
import { DEFAULT_SEVERITY, type Incident, type Observation, type Problem, TITLES } from "./incident-model.ts"
import type { IncidentChange, IncidentDetail, IncidentStorePort, StepPlan } from "./incident-ports.ts"
import { type IncidentPolicy, openingChannels } from "./incident-routing.ts"
import { type RuleAction, rulesFor, watchMessage } from "./incident-rules.ts"
import type { Notice } from "./notifications.ts"
import type { Clock } from "./ports.ts"
import { utcText } from "./utc-text.ts"

const log = createLogger("incidents")

// The store answers without ever leaving the microtask queue, so a loop of writes would keep the
// event loop, and every heartbeat waiting on it, until it ends: each event and watch yields first.
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Incidents one node may open per hour with notifications; past it they are only recorded. */
export const FLAPPING_PER_HOUR = 10
/**
 * Incidents one principal's deployment records may open per hour with notifications; past it they are
 * only recorded. A real deploy that fails on many nodes is on the reporter's terminal already.
 */
export const REPORTED_PER_HOUR = 20
/** Watches turned into incidents per tick and problem, so a network split is taken in slices. */
const WATCH_BATCH = 500
const WATCHED: { problem: Problem; after: (p: IncidentPolicy) => number }[] = [
  { problem: "unreachable", after: (p) => p.unreachableAfterMs },
  { problem: "drift-unhealed", after: (p) => p.driftUnhealedAfterMs },
]

export interface IncidentDeps {
  store: IncidentStorePort
  clock: Clock
  policy: IncidentPolicy
  /** Names of the configured channels and ticket system, in the outbox's terms. */
  channels: readonly string[]
  /** The node's current closure, for messages (null when unknown). */
  currentClosure(nodeId: string): Promise<string | null>
  /**
   * A finished deployment's targets and how each ended, and the principal that reported it (null for
   * a deploy the control plane ran); null if it is not recorded.
   */
  deployment(id: string): Promise<FinishedDeployment | null>
  /** Whether `name` is one of this control plane's nodes: an enrolled node id or a [fleet.nodes] name. */
  isNode(name: string): Promise<boolean>
  /**
   * Whether an agent is enrolled under the id (removed nodes are not): a watch of a node removed since
   * it started opens nothing. Without it, every node counts.
   */
  enrolled?(nodeId: string): Promise<boolean>
  /**
   * Whether the node's credential is revoked (it was told to be silent): its silence opens nothing,
   * even once its credential-revoked incident has been resolved by hand.
   */
  revoked?(nodeId: string): Promise<boolean>
  /** Records an `incident.*` event (fleet.note), which the bus then carries to live streams. */
  note(type: ControlEventType, nodeId: string, data: Record<string, unknown>): Promise<unknown>
  /** Something was enqueued for delivery. */
  wake(): void
}

export interface FinishedDeployment {
  reportedBy: string | null
  /** The closure it deployed: a failed target's incident is about it. */
  closure: string
  targets: { target: string; status: string; error: string | null }[]
}

/** What a notice links to: the dashboard's page of the node. */
const link = (base: string, nodeId: string) =>
  base ? `${base.replace(/\/+$/, "")}/#/nodes/${encodeURIComponent(nodeId)}` : undefined

export function createIncidents(deps: IncidentDeps) {
  const { store, clock, policy } = deps
  /** Work handled one at a time, in order: an event's rules, a heartbeat's recoveries, a re-read. */
  const queue: { what: string; nodeId: string | null; run: () => Promise<unknown> }[] = []
  const awaiting = awaitingCongruence(store)
  let draining: Promise<void> | null = null
  let dashboardUrl = policy.dashboardUrl

  const plan: StepPlan = {
    opening: (incident, openedLastHour) => {
      const channels = openingChannels(policy, deps.channels, incident, clock.now())
      if (channels.length === 0) return { channels, note: null }
      // A caller may report as many deployments as it likes, each naming any node: its word pages
      // only so often.
      const reported = openedLastHour.reporter
      if (reported !== null && reported >= REPORTED_PER_HOUR) {
        log.warn("incident not told: its reporter opened too many", { node: incident.nodeId, reported })
        return {
          channels: [],
          note: `not notified: ${reported} other incidents opened by the same caller's deployment records in the last hour`,
        }
      }
      if (openedLastHour.node < FLAPPING_PER_HOUR) return { channels, note: null }
      // A node that keeps failing and recovering (or one that reports so on purpose) would otherwise
      // page and post without end; past the limit its incidents are recorded, and told to nobody.
      log.warn("incident not told: its node is flapping", {
        node: incident.nodeId,
        openedLastHour: openedLastHour.node,
      })
      return {
        channels: [],
        note: `not notified: ${openedLastHour.node} other incidents opened on this node in the last hour`,
      }
    },
    updateEveryMs: policy.updateEveryMs,
    notice: (incident: Incident, step: Notice["step"], at: string): Notice => ({
      incidentId: incident.id,
      step,
      node: incident.nodeId,
      problem: incident.problem,
      severity: incident.severity,
      // A node's own words (a failed heal's error) reach Slack, email and tickets: control and format
      // characters in them (a bidi override that makes the text read backwards, ESC, CR) go escaped,
      // as on a terminal, so no node can reorder or hide what a notice says around them. They pass the
      // secret net first, as every API answer does: a channel's readers are no fewer than the fleet's
      // viewers, and what a channel received cannot be taken back.
      title: terminalLine(redactText(incident.title)),
      message: terminalText(redactText(incident.message)),
      closures: {
        ...(incident.closures.desired ? { desired: incident.closures.desired } : {}),
        // What ran when it opened: a resolution's notice would show it as if it still ran.
        ...(incident.closures.current && step !== "resolved" ? { current: incident.closures.current } : {}),
      },
      ...(link(dashboardUrl, incident.nodeId) ? { dashboardUrl: link(dashboardUrl, incident.nodeId) } : {}),
      at,
    }),
  }

  const announce = async (change: IncidentChange) => {
    if (change.step === null) return
    deps.wake()
    const step = change.step.startsWith("updated") ? "updated" : change.step
    const i = change.incident
    await deps.note(`incident.${step}` as ControlEventType, i.nodeId, {
      incidentId: i.id,
      problem: i.problem,
      severity: i.severity,
      title: i.title,
      message: i.message,
      ticketId: i.ticketLabel ?? i.ticketId,
    })
  }

  const observe = async (o: Observation) => {
    const current = await deps.currentClosure(o.nodeId)
    const observation = { ...o, closures: { ...o.closures, current } }
    let change: IncidentChange
    try {
      change = await store.observe(observation, plan)
    } catch (error) {
      // Another replica opened it between our look and our insert (the open index refused ours).
      log.info("incident opened elsewhere; updating it", { node: o.nodeId, problem: o.problem, error })
      change = await store.observe(observation, plan)
    }
    if (change.step === "opened")
      log.warn("incident opened", { node: o.nodeId, problem: o.problem, id: change.incident.id })
    awaiting.seen(change.incident)
    await announce(change)
  }

  const recover = async (
    nodeId: string,
    problems: Problem[],
    message: string,
    reporter?: string,
    incidentId?: string,
  ) => {
    if (reporter === undefined) await store.clearWatches(nodeId, problems)
    const at = clock.now().toISOString()
    const changes = await store.recover({ nodeId, problems, message, at, reporter, incidentId }, plan)
    for (const change of changes) {
      log.info("incident resolved", { node: nodeId, problem: change.incident.problem, id: change.incident.id })
      awaiting.resolved(change.incident)
      await announce(change)
    }
    return changes.length
  }

  /** The targets a reported deployment may speak for: this control plane's nodes, not any name. */
  const knownTargets = async (d: FinishedDeployment, id: string) => {
    if (d.reportedBy === null) return d.targets
    const known: FinishedDeployment["targets"] = []
    const unknown: string[] = []
    for (const t of d.targets) {
      if (await deps.isNode(t.target)) known.push(t)
      else unknown.push(t.target)
    }
    if (unknown.length > 0)
      log.info("a reported deployment names targets that are not nodes here: no incident for them", {
        id,
        count: unknown.length,
        targets: unknown.slice(0, 10),
      })
    return known
  }

  const deployment = async (id: string, status: string) => {
    const d = await deps.deployment(id)
    if (!d) return
    const reporter = d.reportedBy ?? undefined
    // A reported deployment says so: whoever reads the notice knows whose word it is.
    const source = reporter === undefined ? `deployment ${id}` : `reported deployment ${id}`
    const at = clock.now().toISOString()
    // A `refused` target (another deploy or rollback held the node) neither opens nor resolves one:
    // nothing failed there, and how the node ends up is the other deploy's to say.
    for (const t of await knownTargets(d, id)) {
      if (t.status === "failed" || t.status === "rolled-back") {
        const what = t.status === "rolled-back" ? "deploy rolled back" : "deploy failed"
        await observe({
          nodeId: t.target,
          problem: "deploy-failed",
          severity: DEFAULT_SEVERITY["deploy-failed"],
          title: TITLES["deploy-failed"](t.target),
          message: `${what} (${source})${t.error ? `: ${t.error}` : ""}`,
          closures: { desired: d.closure, current: null },
          at,
          reporter,
        })
      } else if (t.status === "deployed" || t.status === "up-to-date")
        // A deploy the control plane ran resolves any deploy-failed incident of its target; a reported
        // one only those records opened (store: `reported_by`), whoever reported them.
        await recover(
          t.target,
          ["deploy-failed"],
          `${source} ${status === "succeeded" ? "succeeded" : "reached it"}`,
          reporter,
        )
    }
  }

  const apply = async (action: RuleAction) => {
    switch (action.kind) {
      case "observe":
        return observe(action.observation)
      case "recover":
        return recover(action.nodeId, action.problems, action.message, undefined, action.incidentId)
      case "watch":
        return store.startWatch(action.nodeId, action.problem, action.sinceMs, action.message)
      case "deployment":
        return deployment(action.id, action.status)
    }
  }

  const drain = async () => {
    for (let work = queue.shift(); work; work = queue.shift()) {
      await yieldToIo()
      try {
        await work.run()
      } catch (error) {
        log.error("incident rules failed", { of: work.what, node: work.nodeId, error })
      }
    }
  }

  const applyAll = async (actions: RuleAction[]) => {
    for (const action of actions) await apply(action)
  }

  const kick = () => {
    if (draining) return
    draining = drain().finally(() => {
      draining = null
      if (queue.length > 0) kick()
    })
  }
  /** Queues `run`; resolves once it has run, failed or not (drain logs a failure). */
  const enqueue = (what: string, nodeId: string | null, run: () => Promise<unknown>) =>
    new Promise<void>((done) => {
      queue.push({ what, nodeId, run: () => run().finally(done) })
      kick()
    })

  return {
    /** The bus subscriber: queues the event and returns at once. */
    handle(event: FleetEvent) {
      if (event.type.startsWith("incident.")) return
      void enqueue(event.type, event.nodeId, () => applyAll(rulesFor(event, clock.now().toISOString())))
    },

    /** Every heartbeat taken (the hot path): queues the recoveries it makes, if any, and returns at once. */
    heartbeat(health: NodeHealth) {
      const ended = awaiting.endedBy(health)
      if (ended.length > 0) void enqueue("heartbeat", health.nodeId, () => applyAll(ended))
    },

    /** Turns the watches that lasted past their threshold into incidents. */
    async tick() {
      const now = clock.now().getTime()
      // In the queue: read between this replica's own changes, never across one.
      if (awaiting.rereadDue(now))
        await enqueue("a re-read of the incidents a heartbeat may end", null, awaiting.reread)
      for (const { problem, after } of WATCHED) {
        const due = await store.dueWatches(problem, now - after(policy), WATCH_BATCH)
        for (const w of due) {
          await yieldToIo()
          await store.clearWatches(w.nodeId, [problem])
          const revoked =
            problem === "unreachable" &&
            ((await store.openProblems(w.nodeId)).includes("credential-revoked") ||
              (await deps.revoked?.(w.nodeId)) === true)
          // A node whose credential was revoked is silent because it was told to be; a removed one is gone
          // (its node.removed resolved everything, and nothing would resolve this).
          if (revoked || (deps.enrolled && !(await deps.enrolled(w.nodeId)))) continue
          await observe({
            nodeId: w.nodeId,
            problem,
            severity: DEFAULT_SEVERITY[problem],
            title: TITLES[problem](w.nodeId),
            message: watchMessage(problem, w.message, w.sinceMs, now),
            closures: { desired: null, current: null },
            at: new Date(now).toISOString(),
          })
        }
      }
    },

    /** The control plane learnt its own address: messages link to its dashboard unless configured. */
    setDashboardUrl(url: string) {
      if (!policy.dashboardUrl) dashboardUrl = url
    },

    /** Resolves once every queued event is handled (tests, a graceful stop). */
    async settled() {
      while (draining) await draining
    },

    /** Forgets incidents resolved more than `days` ago, with their timelines and deliveries. */
    async prune(days: number) {
      const before = new Date(clock.now().getTime() - days * 86_400_000).toISOString()
      const pruned = await store.prune(before)
      if (pruned > 0) log.info("pruned resolved incidents", { pruned, before })
      return pruned
    },

    /**
     * A person closes an incident the control plane would not (a deploy failure no later deploy has
     * reached, a node they know is retired): it is resolved with their name and note, and its
     * channels hear so as for any resolution. The problem, if it comes back, opens a new one.
     */
    async resolveByHand(id: string, by: string, note: string | null) {
      const alreadyResolved = (d: IncidentDetail) =>
        conflict(
          `incident ${id} was resolved already, at ${utcText(d.incident.resolvedAt ?? "")}: ${d.timeline.at(-1)?.message ?? ""}`,
        )
      const found = await store.get(id)
      if (!found) throw notFound(`incident ${JSON.stringify(id)}`)
      const i = found.incident
      if (i.status === "resolved") throw alreadyResolved(found)
      // By id, in the store's transaction: the control plane may have resolved it since the look above,
      // and opened another for the same node and problem that nobody has seen yet.
      const resolved = await recover(
        i.nodeId,
        [i.problem],
        `resolved by ${by}${note ? `: ${note}` : ""}`,
        undefined,
        id,
      )
      const now = (await store.get(id)) as IncidentDetail
      if (resolved === 0) throw alreadyResolved(now)
      return now
    },

    list: store.list,
    get: store.get,
  }
}

export type Incidents = ReturnType<typeof createIncidents>
