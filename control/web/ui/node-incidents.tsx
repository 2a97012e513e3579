// A node's incidents on its page: the open ones first, each with its severity, problem, ticket (the
// id the ITSM tool gave it) and what the outbox still owes. Read from /api/incidents and read again
// whenever an incident event for this node arrives on the stream.
import { useEffect, useState } from "preact/hooks"
import { seg } from "../client/api.ts"
import { ago } from "../client/format.ts"
import type { IncidentView } from "../client/types.ts"
import type { Ctx } from "./app.tsx"

export function NodeIncidents({ ctx, id }: { ctx: Ctx; id: string }) {
  const [incidents, setIncidents] = useState<IncidentView[] | null>(null)
  const [changed, setChanged] = useState(0)

  useEffect(
    () =>
      ctx.fleet.onEvent((e) => {
        if (e.nodeId === id && e.type.startsWith("incident.")) setChanged((n) => n + 1)
      }),
    [ctx, id],
  )
  useEffect(() => {
    let live = true
    ctx.api.get<{ incidents: IncidentView[] }>(`/api/incidents?node=${seg(id)}&limit=20`).then(
      (r) => live && setIncidents(r.incidents),
      () => {},
    )
    return () => {
      live = false
    }
  }, [ctx, id, changed])

  if (!incidents || incidents.length === 0) return null
  const sorted = [...incidents].sort((a, b) => (a.status === b.status ? 0 : a.status === "open" ? -1 : 1))
  return (
    <section aria-labelledby="incidents-title">
      <h2 id="incidents-title">Incidents</h2>
      <div class="table-scroll">
        <table class="grid" data-testid="node-incidents">
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Severity</th>
              <th scope="col">Problem</th>
              <th scope="col">Ticket</th>
              <th scope="col">Opened</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {sorted.map((i) => (
              <tr key={i.id} data-incident-id={i.id}>
                <td class={i.status === "open" ? "bad" : "ok"}>{i.status}</td>
                <td>{i.severity}</td>
                <td>{i.problem}</td>
                <td class="mono" data-testid="incident-ticket">
                  {i.ticketLabel ?? i.ticketId ?? "—"}
                </td>
                <td class="nowrap">{ago(i.openedAt)}</td>
                <td class="detail">
                  {i.message}
                  {i.failed > 0
                    ? ` (${i.failed} deliveries failed)`
                    : i.undelivered > 0
                      ? ` (${i.undelivered} pending)`
                      : ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  )
}
