// Incidents over Bun.SQL (SQLite or PostgreSQL, the control plane's database): an incident's change,
// its timeline entry and the deliveries it causes go in one transaction. The partial unique index on
// open incidents (incident-migrations.ts) keeps one open incident per node and problem even when two
// replicas see the same problem at once: the second insert fails and its caller retries as an update.
// An observation a deployment record reported (`reporter`) rewrites only incidents that principal's
// records opened (`reported_by`). A reported recovery resolves any incident records opened (a
// colleague's fix, or the same person through a token after a login), never one the control plane
// opened or has since seen fail itself (`reported_by` is then cleared): those only the control
// plane's own deploys resolve.
import { randomUUID } from "node:crypto"
import type { SQL } from "bun"
import type { Delivery, Incident, IncidentStep, Problem, Severity, TimelineEntry } from "../../domain/incident-model.ts"
import { atLeast } from "../../domain/incident-model.ts"
import type { IncidentStorePort } from "../../domain/incident-ports.ts"
import type { Notice } from "../../domain/notifications.ts"
import { num, str } from "./columns.ts"

type Row = Record<string, unknown>

export function toIncident(r: Row): Incident {
  return {
    id: String(r.id),
    nodeId: String(r.node_id),
    problem: String(r.problem) as Problem,
    severity: String(r.severity) as Severity,
    status: String(r.status) as Incident["status"],
    title: String(r.title),
    message: String(r.message),
    closures: JSON.parse(String(r.closures)) as Incident["closures"],
    occurrences: num(r.occurrences),
    openedAt: String(r.opened_at),
    updatedAt: String(r.updated_at),
    resolvedAt: str(r.resolved_at),
    ticketId: str(r.ticket_id),
    ticketLabel: str(r.ticket_label),
  }
}

function toDelivery(r: Row): Delivery {
  const status = String(r.status) as Delivery["status"]
  return {
    id: num(r.id),
    incidentId: String(r.incident_id),
    step: String(r.step) as IncidentStep,
    channel: String(r.channel),
    status,
    attempts: num(r.attempts),
    nextAttemptAt: status === "pending" ? new Date(num(r.next_attempt_ms)).toISOString() : null,
    lastError: str(r.last_error),
    externalId: str(r.external_id),
    createdAt: String(r.created_at),
    deliveredAt: str(r.delivered_at),
  }
}

async function addTimeline(tx: SQL, incidentId: string, at: string, step: TimelineEntry["step"], message: string) {
  await tx`INSERT INTO incident_timeline (incident_id, at, step, message) VALUES (${incidentId}, ${at}, ${step}, ${message})`
}

async function enqueue(tx: SQL, incident: Incident, step: IncidentStep, channels: string[], notice: Notice) {
  const due = Date.parse(notice.at)
  for (const channel of channels)
    await tx`
      INSERT INTO incident_outbox (incident_id, step, channel, notice, next_attempt_ms, created_at)
      VALUES (${incident.id}, ${step}, ${channel}, ${JSON.stringify(notice)}, ${due}, ${notice.at})
      ON CONFLICT (incident_id, step, channel) DO NOTHING`
}

async function openedOn(tx: SQL, incidentId: string): Promise<string[]> {
  const rows: Row[] =
    await tx`SELECT channel FROM incident_outbox WHERE incident_id = ${incidentId} AND step = 'opened' ORDER BY id`
  return rows.map((r) => String(r.channel))
}

/** The channels that are ticket systems: their later steps wait for the create's ticket id. */
export const TICKET_CHANNELS = ["servicenow", "jira"] as const

export function incidentStore(db: SQL): IncidentStorePort {
  return {
    observe: (o, plan) =>
      db.begin(async (tx) => {
        const rows: Row[] =
          await tx`SELECT * FROM incidents WHERE node_id = ${o.nodeId} AND problem = ${o.problem} AND status = 'open'`
        if (!rows[0]) {
          const incident: Incident = {
            id: randomUUID(),
            nodeId: o.nodeId,
            problem: o.problem,
            severity: o.severity,
            status: "open",
            title: o.title,
            message: o.message,
            closures: o.closures,
            occurrences: 1,
            openedAt: o.at,
            updatedAt: o.at,
            resolvedAt: null,
            ticketId: null,
            ticketLabel: null,
          }
          const reporter = o.reporter ?? null
          await tx`
            INSERT INTO incidents (id, node_id, problem, severity, status, title, message, closures, opened_at, updated_at, noted_at, reported_by)
            VALUES (${incident.id}, ${o.nodeId}, ${o.problem}, ${o.severity}, 'open', ${o.title}, ${o.message},
              ${JSON.stringify(o.closures)}, ${o.at}, ${o.at}, ${o.at}, ${reporter})`
          const hourAgo = new Date(Date.parse(o.at) - 3_600_000).toISOString()
          const onNode: Row[] = await tx`
            SELECT COUNT(*) AS n FROM incidents WHERE node_id = ${o.nodeId} AND opened_at > ${hourAgo} AND id <> ${incident.id}`
          const byReporter: Row[] =
            reporter === null
              ? []
              : await tx`
            SELECT COUNT(*) AS n FROM incidents WHERE reported_by = ${reporter} AND opened_at > ${hourAgo} AND id <> ${incident.id}`
          const { channels, note } = plan.opening(incident, {
            node: num(onNode[0]?.n),
            reporter: reporter === null ? null : num(byReporter[0]?.n),
          })
          await addTimeline(tx, incident.id, o.at, "opened", note ? `${o.message} (${note})` : o.message)
          await enqueue(tx, incident, "opened", channels, plan.notice(incident, "opened", o.at))
          return { incident, step: "opened" as const }
        }
        const row = rows[0]
        const before = toIncident(row)
        if (o.reporter !== undefined && str(row.reported_by) !== o.reporter) return { incident: before, step: null }
        const noteDue = Date.parse(o.at) - Date.parse(String(row.noted_at)) >= plan.updateEveryMs
        const updates = num(row.updates) + (noteDue ? 1 : 0)
        const incident: Incident = {
          ...before,
          severity: atLeast(o.severity, before.severity) ? o.severity : before.severity,
          message: o.message,
          closures: o.closures,
          occurrences: before.occurrences + 1,
          updatedAt: o.at,
        }
        await tx`
          UPDATE incidents SET severity = ${incident.severity}, message = ${o.message},
            closures = ${JSON.stringify(o.closures)}, occurrences = occurrences + 1, updated_at = ${o.at},
            updates = ${updates}, noted_at = ${noteDue ? o.at : String(row.noted_at)}, reported_by = ${o.reporter ?? null}
          WHERE id = ${incident.id}`
        if (!noteDue) return { incident, step: null }
        const step: IncidentStep = `updated-${updates}`
        await addTimeline(tx, incident.id, o.at, "updated", `seen ${incident.occurrences} times: ${o.message}`)
        const ticket = (await openedOn(tx, incident.id)).filter((c) =>
          (TICKET_CHANNELS as readonly string[]).includes(c),
        )
        await enqueue(tx, incident, step, ticket, plan.notice(incident, "updated", o.at))
        return { incident, step }
      }),

    recover: (r, plan) =>
      db.begin(async (tx) => {
        const rows: Row[] = await tx`
          SELECT * FROM incidents WHERE node_id = ${r.nodeId} AND status = 'open' AND problem IN ${tx(r.problems)}
            ${r.reporter === undefined ? tx`` : tx`AND reported_by IS NOT NULL`}
            ${r.incidentId === undefined ? tx`` : tx`AND id = ${r.incidentId}`}`
        const changes = []
        for (const row of rows) {
          const incident: Incident = {
            ...toIncident(row),
            status: "resolved",
            message: r.message,
            updatedAt: r.at,
            resolvedAt: r.at,
          }
          await tx`
            UPDATE incidents SET status = 'resolved', resolved_at = ${r.at}, updated_at = ${r.at}, message = ${r.message}
            WHERE id = ${incident.id}`
          await addTimeline(tx, incident.id, r.at, "resolved", r.message)
          await enqueue(
            tx,
            incident,
            "resolved",
            await openedOn(tx, incident.id),
            plan.notice(incident, "resolved", r.at),
          )
          changes.push({ incident, step: "resolved" as const })
        }
        return changes
      }),

    async openProblems(nodeId) {
      const rows: Row[] = await db`SELECT problem FROM incidents WHERE node_id = ${nodeId} AND status = 'open'`
      return rows.map((r) => String(r.problem) as Problem)
    },

    async openAbout(problems) {
      // The partial index of open incidents (incidents_open) holds only these rows.
      const rows: Row[] = await db`
        SELECT id, node_id, problem, closures FROM incidents WHERE status = 'open' AND problem IN ${db(problems)}`
      return rows.map((r) => ({
        id: String(r.id),
        nodeId: String(r.node_id),
        problem: String(r.problem) as Problem,
        closures: JSON.parse(String(r.closures)) as Incident["closures"],
      }))
    },

    async list(q) {
      const rows: Row[] = await db`
        SELECT i.*,
          (SELECT COUNT(*) FROM incident_outbox o WHERE o.incident_id = i.id AND o.status = 'pending') AS undelivered,
          (SELECT COUNT(*) FROM incident_outbox o WHERE o.incident_id = i.id AND o.status = 'failed') AS failed,
          (SELECT COUNT(*) FROM incident_outbox o WHERE o.incident_id = i.id AND o.status = 'delivered') AS delivered
        FROM incidents i
        WHERE 1 = 1
          ${q.status === undefined ? db`` : db`AND i.status = ${q.status}`}
          ${q.nodeId === undefined ? db`` : db`AND i.node_id = ${q.nodeId}`}
        ORDER BY i.opened_at DESC, i.id LIMIT ${q.limit}`
      return rows.map((r) => ({
        ...toIncident(r),
        undelivered: num(r.undelivered),
        failed: num(r.failed),
        delivered: num(r.delivered),
      }))
    },

    async get(id) {
      const rows: Row[] = await db`SELECT * FROM incidents WHERE id = ${id}`
      if (!rows[0]) return null
      const timeline: Row[] =
        await db`SELECT at, step, message FROM incident_timeline WHERE incident_id = ${id} ORDER BY id`
      const deliveries: Row[] = await db`SELECT * FROM incident_outbox WHERE incident_id = ${id} ORDER BY id`
      return {
        incident: toIncident(rows[0]),
        timeline: timeline.map((t) => ({
          at: String(t.at),
          step: String(t.step) as TimelineEntry["step"],
          message: String(t.message),
        })),
        deliveries: deliveries.map(toDelivery),
      }
    },

    async prune(resolvedBefore) {
      // A batch at a time, so heartbeats get the database between batches.
      let pruned = 0
      for (;;) {
        const rows: Row[] = await db`
          SELECT id FROM incidents i WHERE status = 'resolved' AND resolved_at < ${resolvedBefore}
            AND NOT EXISTS (SELECT 1 FROM incident_outbox o WHERE o.incident_id = i.id AND o.status = 'pending')
          LIMIT 1000`
        const ids = rows.map((r) => String(r.id))
        if (ids.length === 0) return pruned
        await db.begin(async (tx) => {
          await tx`DELETE FROM incident_outbox WHERE incident_id IN ${tx(ids)}`
          await tx`DELETE FROM incident_timeline WHERE incident_id IN ${tx(ids)}`
          await tx`DELETE FROM incidents WHERE id IN ${tx(ids)}`
        })
        pruned += ids.length
        if (ids.length < 1000) return pruned
        await new Promise((resolve) => setImmediate(resolve))
      }
    },

    async startWatch(nodeId, problem, sinceMs, message) {
      await db`
        INSERT INTO incident_watches (node_id, problem, since_ms, message) VALUES (${nodeId}, ${problem}, ${sinceMs}, ${message})
        ON CONFLICT (node_id, problem) DO NOTHING`
    },

    async clearWatches(nodeId, problems) {
      if (problems.length === 0) return
      await db`DELETE FROM incident_watches WHERE node_id = ${nodeId} AND problem IN ${db(problems)}`
    },

    async dueWatches(problem, beforeMs, limit) {
      const rows: Row[] = await db`
        SELECT node_id, since_ms, message FROM incident_watches
        WHERE problem = ${problem} AND since_ms < ${beforeMs} ORDER BY since_ms LIMIT ${limit}`
      return rows.map((r) => ({ nodeId: String(r.node_id), sinceMs: num(r.since_ms), message: String(r.message) }))
    },
  }
}
