// The ports the incident use cases speak to: the incident store (incidents, timelines, watches) and
// the outbox the delivery worker drains. An incident's change and the deliveries it causes are
// written in one transaction, so a crash leaves either both or neither: no incident nobody hears of,
// no notification about an incident that was not recorded.
import type {
  Delivery,
  Incident,
  IncidentStatus,
  IncidentStep,
  Observation,
  Problem,
  Recovery,
  TimelineEntry,
} from "./incident-model.ts"
import type { Notice } from "./notifications.ts"

export interface OpenedLastHour {
  node: number
  reporter: number | null
}

/** Decides, inside the store's transaction, who hears of a step and what they read. */
export interface StepPlan {
  /**
   * The channels an opening goes to, given how many incidents opened in the last hour (this one
   * excluded) on its node, and by its reporter's records when a record reported it (else null), and a
   * line for the timeline when some were held back.
   */
  opening(incident: Incident, openedLastHour: OpenedLastHour): { channels: string[]; note: string | null }
  notice(incident: Incident, step: Notice["step"], at: string): Notice
  /** A repeat makes a ticket note only if the last note is at least this old. */
  updateEveryMs: number
}

export interface IncidentChange {
  incident: Incident
  /** The step the change made: null when a repeat was only counted. */
  step: IncidentStep | null
}

export interface IncidentQuery {
  status?: IncidentStatus
  nodeId?: string
  limit: number
}

export interface IncidentDetail {
  incident: Incident
  timeline: TimelineEntry[]
  deliveries: Delivery[]
}

export interface IncidentStorePort {
  /** Opens an incident for the observation, or updates the open one for its node and problem. */
  observe(o: Observation, plan: StepPlan): Promise<IncidentChange>
  /** Resolves the open incidents of the recovery's node and problems. */
  recover(r: Recovery, plan: StepPlan): Promise<IncidentChange[]>
  /** The problems a node has an open incident for. */
  openProblems(nodeId: string): Promise<Problem[]>
  /** Every open incident of these problems, with the closures it is about. */
  openAbout(problems: Problem[]): Promise<Pick<Incident, "id" | "nodeId" | "problem" | "closures">[]>
  list(q: IncidentQuery): Promise<(Incident & { undelivered: number; failed: number; delivered: number })[]>
  get(id: string): Promise<IncidentDetail | null>

  /** Deletes incidents resolved before `resolvedBefore` whose deliveries are all settled; returns how many. */
  prune(resolvedBefore: string): Promise<number>

  /** Starts waiting for a problem that becomes an incident only if it lasts (the earliest start is kept). */
  startWatch(nodeId: string, problem: Problem, sinceMs: number, message: string): Promise<void>
  clearWatches(nodeId: string, problems: Problem[]): Promise<void>
  /** Watches of `problem` started before `beforeMs`, oldest first. */
  dueWatches(
    problem: Problem,
    beforeMs: number,
    limit: number,
  ): Promise<{ nodeId: string; sinceMs: number; message: string }[]>
}

/** A delivery the worker holds for a while (its lease), with what it needs to send it. */
export interface OutboxItem {
  id: number
  incidentId: string
  step: IncidentStep
  channel: string
  notice: Notice
  attempts: number
  /** The incident's ticket, for a ticket step after the create. */
  ticketId: string | null
}

export interface OutboxPort {
  /**
   * Pending deliveries due at `nowMs`, leased until `nowMs + leaseMs`: per incident and channel only
   * the oldest pending one (steps go out in order), and a ticket change only once the ticket exists.
   */
  claimDue(nowMs: number, leaseMs: number, limit: number): Promise<OutboxItem[]>
  /** Acknowledged: never sent again. A ticket's create also keeps the ticket's id on the incident. */
  delivered(item: OutboxItem, at: string, result: { externalId?: string; label?: string }): Promise<void>
  /** Failed this time: tried again at `nextMs`. */
  retryLater(id: number, attempts: number, nextMs: number, error: string): Promise<void>
  /** Failed for good (refused, or too many attempts): kept with its error, shown, not sent again. */
  failed(id: number, attempts: number, error: string): Promise<void>
  /** Drops every lease (a single control plane starting: nobody else can hold one). */
  releaseLeases(): Promise<void>
  /** When the next pending delivery is due, if any. */
  nextDueMs(): Promise<number | null>
}
