// The notification outbox over Bun.SQL. A delivery is leased before it is sent (claimed_until_ms), so
// two workers (replicas on one PostgreSQL) never send the same row at once, and a worker that died
// mid-send leaves a lease that simply runs out. Per incident and channel only the oldest pending row is
// handed out, so a resolution never overtakes its opening; a ticket's later steps wait for the create
// that gives them the ticket's id.
import type { SQL } from "bun"
import type { IncidentStep } from "../../domain/incident-model.ts"
import type { OutboxPort } from "../../domain/incident-ports.ts"
import { Notice } from "../../domain/notifications.ts"
import { str } from "./columns.ts"
import { TICKET_CHANNELS } from "./incident-store.ts"

type Row = Record<string, unknown>

function readNotice(text: string): Notice | null {
  try {
    const parsed = Notice.safeParse(JSON.parse(text))
    return parsed.success ? parsed.data : null
  } catch {
    return null
  }
}

export function outboxStore(db: SQL): OutboxPort {
  const tickets = [...TICKET_CHANNELS]
  return {
    claimDue: (nowMs, leaseMs, limit) =>
      db.begin(async (tx) => {
        const rows: Row[] = await tx`
          SELECT o.id, o.incident_id, o.step, o.channel, o.notice, o.attempts, i.ticket_id
          FROM incident_outbox o JOIN incidents i ON i.id = o.incident_id
          WHERE o.status = 'pending' AND o.next_attempt_ms <= ${nowMs}
            AND (o.claimed_until_ms IS NULL OR o.claimed_until_ms <= ${nowMs})
            AND (o.step = 'opened' OR i.ticket_id IS NOT NULL OR o.channel NOT IN ${tx(tickets)})
            AND NOT EXISTS (
              SELECT 1 FROM incident_outbox p
              WHERE p.incident_id = o.incident_id AND p.channel = o.channel AND p.status = 'pending' AND p.id < o.id)
          ORDER BY o.next_attempt_ms, o.id LIMIT ${limit}`
        if (rows.length === 0) return []
        const leased: Row[] = await tx`
          UPDATE incident_outbox SET claimed_until_ms = ${nowMs + leaseMs}
          WHERE id IN ${tx(rows.map((r) => Number(r.id)))} AND status = 'pending'
            AND (claimed_until_ms IS NULL OR claimed_until_ms <= ${nowMs})
          RETURNING id`
        const mine = new Set(leased.map((r) => Number(r.id)))
        const items = []
        for (const r of rows) {
          if (!mine.has(Number(r.id))) continue
          const notice = readNotice(String(r.notice))
          // One unreadable row must not stop every delivery behind it: it fails, kept and shown.
          if (!notice) {
            await tx`
              UPDATE incident_outbox SET status = 'failed', last_error = 'the stored notice is unreadable', claimed_until_ms = NULL
              WHERE id = ${Number(r.id)}`
            continue
          }
          items.push({
            id: Number(r.id),
            incidentId: String(r.incident_id),
            step: String(r.step) as IncidentStep,
            channel: String(r.channel),
            notice,
            attempts: Number(r.attempts),
            ticketId: str(r.ticket_id),
          })
        }
        return items
      }),

    async delivered(item, at, result) {
      const mark = (q: SQL) => q`
        UPDATE incident_outbox SET status = 'delivered', delivered_at = ${at}, attempts = attempts + 1,
          external_id = ${result.externalId ?? null}, claimed_until_ms = NULL, last_error = NULL
        WHERE id = ${item.id}`
      const ticket = item.step === "opened" && tickets.includes(item.channel as (typeof tickets)[number])
      // Only a ticket's create writes two rows; every other acknowledgement is one statement.
      if (!ticket || !result.externalId) return void (await mark(db))
      await db.begin(async (tx) => {
        await mark(tx)
        await tx`
          UPDATE incidents SET ticket_id = ${result.externalId}, ticket_label = ${result.label ?? result.externalId}
          WHERE id = ${item.incidentId}`
      })
    },

    async retryLater(id, attempts, nextMs, error) {
      await db`
        UPDATE incident_outbox SET attempts = ${attempts}, next_attempt_ms = ${nextMs}, last_error = ${error},
          claimed_until_ms = NULL
        WHERE id = ${id}`
    },

    async failed(id, attempts, error) {
      await db`
        UPDATE incident_outbox SET status = 'failed', attempts = ${attempts}, last_error = ${error}, claimed_until_ms = NULL
        WHERE id = ${id}`
    },

    async releaseLeases() {
      await db`UPDATE incident_outbox SET claimed_until_ms = NULL WHERE status = 'pending' AND claimed_until_ms IS NOT NULL`
    },

    async nextDueMs() {
      const rows: Row[] = await db`SELECT MIN(next_attempt_ms) AS due FROM incident_outbox WHERE status = 'pending'`
      const due = rows[0]?.due
      return due === null || due === undefined ? null : Number(due)
    },
  }
}
