// The fleet's latest events, those from before sign-in and then each as it happens (each node's own
// history is on its page), newest first, filterable by type. Text only: every value from the API is rendered as text.
import { useState } from "preact/hooks"
import { clock, eventSummary, when } from "../client/format.ts"
import { href } from "../client/router.ts"
import type { FleetEvent } from "../client/types.ts"
import type { Ctx } from "./app.tsx"

/** Rows of events; `compact` (the overview's side panel) shows the time of day and puts the detail in a tooltip. */
export function EventRows({ events, compact = false }: { events: FleetEvent[]; compact?: boolean }) {
  return (
    <tbody>
      {events.map((e) => (
        <tr key={e.id} data-event-id={e.id} title={compact ? eventSummary(e) : undefined}>
          <td class="nowrap">{compact ? clock(e.at) : when(e.at)}</td>
          <td class="name">
            {e.nodeId ? (
              <a href={href.node(e.nodeId)} title={e.nodeId}>
                {e.nodeId}
              </a>
            ) : (
              "—"
            )}
          </td>
          <td>
            <span class={`ev ev-${e.type.replace(".", "-")}`}>{e.type}</span>
          </td>
          {!compact && <td class="detail">{eventSummary(e)}</td>}
        </tr>
      ))}
    </tbody>
  )
}

export function EventsPage({ ctx }: { ctx: Ctx }) {
  const [type, setType] = useState("")
  const all = ctx.fleet.feed()
  const types = [...new Set(all.map((e) => e.type))].sort()
  const shown = type === "" ? all : all.filter((e) => e.type === type)
  return (
    <section aria-labelledby="events-title">
      <h1 id="events-title">Events</h1>
      <div class="filters">
        <label>
          <span>Type</span>
          <select value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="">any</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <span class="shown" role="status">
          {shown.length} {shown.length === 1 ? "event" : "events"}, newest first (the page keeps the latest 500)
        </span>
      </div>
      {shown.length === 0 ? (
        <p class="empty">No events yet. They appear here as they happen.</p>
      ) : (
        <div class="table-scroll">
          <table class="grid" data-testid="event-feed">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Node</th>
                <th scope="col">Event</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <EventRows events={shown} />
          </table>
        </div>
      )}
    </section>
  )
}
