// Operator routes for the event log: a filtered page (oldest first, `after` as cursor) and a live
// Server-Sent Events stream that first replays what follows Last-Event-ID, so a dashboard that
// reconnects misses nothing.
import { Hono } from "hono"
import { streamSSE } from "hono/streaming"
import { z } from "zod"
import { NodeId } from "../../protocol/ids.ts"
import { EventType, type FleetEvent } from "../domain/events.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { EventBusPort } from "../domain/ports.ts"
import type { ApiEnv } from "./auth.ts"
import { query } from "./validate.ts"

// `?type=a,b` and `?type=a&type=b` both work.
const TypeList = z
  .union([z.string().max(1000), z.array(z.string().max(1000)).max(20)])
  .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((t) => t.trim()))
  .pipe(z.array(EventType).max(20))

export const EventsQuery = z.object({
  node: NodeId.optional(),
  type: TypeList.optional(),
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
})

const matches = (e: FleetEvent, q: { node?: string; type?: string[] }) =>
  (q.node === undefined || e.nodeId === q.node) && (q.type === undefined || q.type.includes(e.type))

export const eventRoutes = (fleet: Fleet, bus: EventBusPort) =>
  new Hono<ApiEnv>()
    .get("/api/events", query(EventsQuery), async (c) => {
      const q = c.req.valid("query")
      const events = await fleet.listEvents({ nodeId: q.node, types: q.type, afterId: q.after, limit: q.limit })
      return c.json({ events })
    })
    .get("/api/events/stream", query(EventsQuery), (c) => {
      const q = c.req.valid("query")
      const lastId = Number.parseInt(c.req.header("last-event-id") ?? "", 10)
      return streamSSE(c, async (stream) => {
        const queue: FleetEvent[] = []
        let wake: (() => void) | null = null
        const unsubscribe = bus.subscribe((e) => {
          if (!matches(e, q)) return
          queue.push(e)
          wake?.()
        })
        // A client that leaves ends the wait below at once, so nothing of its stream outlives it.
        stream.onAbort(() => {
          unsubscribe()
          wake?.()
        })
        // Sent at once so the client has the response headers before the first event.
        await stream.writeSSE({ event: "ready", data: "{}", retry: 2000 })
        let sent = Number.isFinite(lastId) ? lastId : (q.after ?? -1)
        if (sent >= 0) {
          for (const e of await fleet.listEvents({ nodeId: q.node, types: q.type, afterId: sent, limit: 1000 })) {
            await stream.writeSSE({ id: String(e.id), event: e.type, data: JSON.stringify(e) })
            sent = e.id
          }
        }
        while (!stream.aborted) {
          const next = queue.shift()
          if (!next) {
            // Until an event, the client leaving, or 15 s for a keep-alive; the timer goes with the wait.
            await new Promise<void>((resolve) => {
              const timer = setTimeout(done, 15_000)
              function done() {
                clearTimeout(timer)
                wake = null
                resolve()
              }
              wake = done
            })
            if (queue.length === 0 && !stream.aborted) await stream.write(": keep-alive\n\n")
            continue
          }
          if (next.id <= sent) continue
          await stream.writeSSE({ id: String(next.id), event: next.type, data: JSON.stringify(next) })
          sent = next.id
        }
        unsubscribe()
      })
    })
