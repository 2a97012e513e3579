// Operator routes for the event log: a filtered page (oldest first, `after` as cursor) and a live
// Server-Sent Events stream that first replays what follows Last-Event-ID, so a dashboard that
// reconnects misses nothing. Live frames come from the fan-out (event-fanout.ts), which bounds what
// each stream holds and how many streams there are; a stream that fell behind reads the store.
import { Hono } from "hono"
import { z } from "zod"
import { NodeId } from "../../protocol/ids.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { can } from "../domain/auth/roles.ts"
import { EventType, type FleetEvent } from "../domain/events.ts"
import type { Fleet } from "../domain/fleet.ts"
import { type ApiEnv, bearerToken } from "./auth.ts"
import { type EventFanout, encodeFrame } from "./event-fanout.ts"
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

const encoder = new TextEncoder()
/** The `retry` asks EventSource to come back after 2 s; it resumes with Last-Event-ID. */
const READY = encoder.encode("event: ready\ndata: {}\nretry: 2000\n\n")
const KEEP_ALIVE = encoder.encode(": keep-alive\n\n")
const KEEP_ALIVE_MS = 15_000
/** Events read from the store at a time when a stream replays or catches up. */
const PAGE = 500

export const eventRoutes = (
  fleet: Fleet,
  fanout: EventFanout,
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
      const principal = c.get("principal")
      const sub = fanout.open(principal.kind === "user" ? principal.owner : `node:${principal.nodeId}`, (e) =>
        matches(e, q),
      )
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
      let sent = Number.isFinite(lastId) ? lastId : (q.after ?? -1)
      // What follows Last-Event-ID comes from the store, as does all a client missed while it fell behind.
      let fromStore = sent >= 0
      let started = false
      const signal = c.req.raw.signal
      const left = followed()
      let gone = false
      const leave = () => {
        sub.close()
        if (!gone) left()
        gone = true
      }
      signal.addEventListener("abort", leave, { once: true })

      /** The next frames to send, a keep-alive after a quiet while, or null to look again. */
      const next = async (): Promise<Uint8Array[] | null> => {
        if (fromStore || sub.behind) {
          // Live frames are held again from here on; any the page below also holds are skipped by id.
          sub.caughtUp()
          const page = await fleet.listEvents({ nodeId: q.node, types: q.type, afterId: sent, limit: PAGE })
          fromStore = page.length === PAGE
          sent = page.at(-1)?.id ?? sent
          return page.length > 0 ? page.map(encodeFrame) : null
        }
        const frames = sub.take().filter((f) => f.event.id > sent)
        sent = frames.at(-1)?.event.id ?? sent
        if (frames.length > 0) return frames.map((f) => f.bytes)
        return (await sub.wait(KEEP_ALIVE_MS)) ? null : [KEEP_ALIVE]
      }

      // Pulled: the next chunk is made only once the client has taken the last, so a client that reads
      // nothing costs its slot and at most the fan-out's bound, never a growing queue.
      const body = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            const end = (last?: Uint8Array) => {
              if (last) controller.enqueue(last)
              controller.close()
              signal.removeEventListener("abort", leave)
              leave()
            }
            if (!started) {
              started = true
              controller.enqueue(READY) // at once, so the client has the headers before the first event
              return
            }
            for (;;) {
              if (sub.closed) return end()
              const chunks = await next()
              if (chunks === null) continue
              if (sub.closed) return end()
              const refused = await refusal()
              if (refused !== null) {
                const error = { error: `${refused}; the event stream ends`, code: "AUTHENTICATION_FAILED" }
                return end(encoder.encode(`event: error\ndata: ${JSON.stringify(error)}\n\n`))
              }
              for (const chunk of chunks) controller.enqueue(chunk)
              return
            }
          },
          cancel: leave,
        },
        { highWaterMark: 0 },
      )
      return c.body(body, 200, {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        Connection: "keep-alive",
      })
    })
