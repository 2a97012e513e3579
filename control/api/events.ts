// Operator routes for the event log: a filtered page (oldest first, `after` as cursor) and a live
// Server-Sent Events stream that first replays what follows Last-Event-ID, so a dashboard that
// reconnects misses nothing.
import { Hono } from "hono"
import { streamSSE } from "hono/streaming"
import { z } from "zod"
import { NodeId } from "../../protocol/ids.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { can } from "../domain/auth/roles.ts"
import { EventType, type FleetEvent } from "../domain/events.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { EventBusPort } from "../domain/ports.ts"
import { type ApiEnv, bearerToken } from "./auth.ts"
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

export const eventRoutes = (
  fleet: Fleet,
  bus: EventBusPort,
  authenticator: Authenticator,
  /** Counts a follower for as long as its stream is open (metrics); returns what marks it gone. */
  followed: () => () => void = () => () => {},
) =>
  new Hono<ApiEnv>()
    .get("/api/events", query(EventsQuery), async (c) => {
      const q = c.req.valid("query")
      const events = await fleet.listEvents({ nodeId: q.node, types: q.type, afterId: q.after, limit: q.limit })
      return c.json({ events })
    })
    .get("/api/events/stream", query(EventsQuery), (c) => {
      const q = c.req.valid("query")
      const lastId = Number.parseInt(c.req.header("last-event-id") ?? "", 10)
      // The guard let this caller in; a stream outlives that moment, so the credential is asked again
      // before anything more is sent: a revoked token, an ended session or a lost role ends the stream.
      const token = bearerToken(c.req.header("authorization"))
      const refusal = async (): Promise<string | null> => {
        try {
          const p = await authenticator.authenticate(token)
          return p.kind === "user" && can(p.role, "fleet:read") ? null : "the credential no longer has fleet:read"
        } catch (error) {
          return error instanceof Error ? error.message : "authentication failed"
        }
      }
      return streamSSE(c, async (stream) => {
        const left = followed()
        stream.onAbort(left)
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
          if (queue.length === 0) {
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
            if (stream.aborted) break
          }
          const refused = await refusal()
          if (refused !== null) {
            const error = { error: `${refused}; the event stream ends`, code: "AUTHENTICATION_FAILED" }
            await stream.writeSSE({ event: "error", data: JSON.stringify(error) })
            break
          }
          if (queue.length === 0) {
            await stream.write(": keep-alive\n\n")
            continue
          }
          for (let next = queue.shift(); next; next = queue.shift()) {
            if (next.id <= sent) continue
            await stream.writeSSE({ id: String(next.id), event: next.type, data: JSON.stringify(next) })
            sent = next.id
          }
        }
        unsubscribe()
        left()
      })
    })
