// Operator routes for the event log: a filtered page (oldest first, `after` as cursor, or with `tail`
// the last `limit` that match, still oldest first) and a live
// Server-Sent Events stream that first replays what follows Last-Event-ID, so a dashboard that
// reconnects misses nothing (or what follows `after`, or the last `limit` events that match). Live frames come from the fan-out (event-fanout.ts), which bounds what
// each stream holds and how many streams there are; a stream that fell behind reads the store.
import { Hono } from "hono"
import { z } from "zod"
import { failureLog } from "../../protocol/failure-log.ts"
import { NodeId } from "../../protocol/ids.ts"
import { createLogger } from "../../protocol/log.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { EventType, type FleetEvent } from "../domain/events.ts"
import type { Fleet } from "../domain/fleet.ts"
import { type ApiEnv, bearerToken } from "./auth.ts"
import { type EventFanout, encodeFrame } from "./event-fanout.ts"
import { streamCredentials } from "./stream-credentials.ts"
import { QueryFlag, query } from "./validate.ts"

// `?type=a,b` and `?type=a&type=b` both work.
const TypeList = z
  .union([z.string().max(1000), z.array(z.string().max(1000)).max(20)])
  .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((t) => t.trim()))
  .pipe(z.array(EventType).max(20))

const Limit = z.coerce.number().int().min(1).max(1000)
/**
 * The most event data a page answers with (it always holds one event). A heal's output is up to
 * 64 KiB, so `?limit=1000` could answer 70 MB and hold the event loop while it was read and sent.
 */
const PAGE_BYTES = 8 * 1024 * 1024

export const EventsQuery = z.object({
  node: NodeId.optional(),
  type: TypeList.optional(),
  after: z.coerce.number().int().min(0).optional(),
  limit: Limit.default(100),
  /** The newest page rather than the oldest. */
  tail: QueryFlag.optional(),
})

// A stream has no page size: without `limit` it sends only what happens from now on (or replays
// from `after`), as it always did, so dashboards that never asked for a backlog get none. Its
// `limit` is a tail already.
const StreamQuery = EventsQuery.omit({ tail: true }).extend({ limit: Limit.optional() })

const log = createLogger("events")
/** Streams whose read of the store failed, said once a minute however many there are. */
const readFailed = failureLog(log, "an event stream could not read the store; it ended, and its client reconnects")

const matches = (e: FleetEvent, q: { node?: string; type?: string[] }) =>
  (q.node === undefined || e.nodeId === q.node) && (q.type === undefined || q.type.includes(e.type))

const STREAM_HEADERS = { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" }
const encoder = new TextEncoder()
/** The `retry` asks EventSource to come back after 2 s; it resumes with Last-Event-ID. */
const READY = encoder.encode("event: ready\ndata: {}\nretry: 2000\n\n")
const KEEP_ALIVE = encoder.encode(": keep-alive\n\n")
const KEEP_ALIVE_MS = 15_000
// What one pull hands the server for a client: a few frames, not all there are. Bun holds what the
// socket does not take at once, so this bounds what a client that stopped reading costs beyond the
// kernel's buffers: one chunk, not a page of the store or everything the fan-out held for it.
/** Bytes of live frames per pull (at least one frame). */
const CHUNK_BYTES = 64 * 1024
/** Events read from the store per pull, at most, when a stream replays or catches up. */
const PAGE = 64
/** Ids of events read from the store that a stream remembers, to skip live frames it already sent. */
const READ_IDS_KEPT = 4 * PAGE

/**
 * Streams read the store (replay, catch-up) at most STORE_READERS at a time. Clients that stop reading
 * look like fast readers until the kernel's buffers fill (megabytes each), so under a flood thousands
 * of streams fall behind at once; unbounded, their reads queued in memory faster than the store
 * answered. Waiting for a turn costs a closure.
 */
const STORE_READERS = 2

function turns(n: number) {
  let free = n
  const waiting: (() => void)[] = []
  return async <T>(read: () => Promise<T> | T): Promise<T> => {
    if (free > 0) free--
    else await new Promise<void>((resolve) => waiting.push(resolve))
    try {
      return await read()
    } finally {
      const next = waiting.shift()
      if (next) next()
      else free++
    }
  }
}

export const eventRoutes = (
  fleet: Fleet,
  fanout: EventFanout,
  authenticator: Authenticator,
  /** Counts a follower for as long as its stream is open (metrics); returns what marks it gone. */
  followed: () => () => void = () => () => {},
) => {
  const credentials = streamCredentials(authenticator)
  const storeTurn = turns(STORE_READERS)
  return new Hono<ApiEnv>()
    .get("/api/events", query(EventsQuery), async (c) => {
      const q = c.req.valid("query")
      const matching = { nodeId: q.node, types: q.type, afterId: q.after, limit: q.limit, maxBytes: PAGE_BYTES }
      // The tail is read as the stream reads its backlog: where the last `limit` start, then a page from there.
      const first = q.tail ? await fleet.eventTailStart(matching) : null
      const events = await fleet.listEvents(first === null ? matching : { ...matching, afterId: first - 1 })
      return c.json({ events })
    })
    .get("/api/events/stream", query(StreamQuery), (c) => {
      // A HEAD gets the headers alone: Bun sends no body for it and never reads or cancels one, so a
      // stream opened for it kept its slot (and what the fan-out held for it) until the process ended.
      if (c.req.method === "HEAD") return c.body(null, 200, STREAM_HEADERS)
      const q = c.req.valid("query")
      const lastId = Number.parseInt(c.req.header("last-event-id") ?? "", 10)
      const principal = c.get("principal")
      // Counted per user or API token: a viewer token an admin made must not spend the admin's streams
      // (16 of them held open shut out the dashboard of the admin who made it). Only admins make tokens.
      const sub = fanout.open(principal.kind === "user" ? principal.subject : `node:${principal.nodeId}`, (e) =>
        matches(e, q),
      )
      // The guard let this caller in; a stream outlives that moment, so the credential is asked again
      // before anything more is sent (stream-credentials.ts).
      const token = bearerToken(c.req.header("authorization"))
      const resumed = Number.isFinite(lastId)
      let sent = resumed ? lastId : (q.after ?? -1)
      // `limit` starts the stream with at most the last `limit` matching events (after `after`), as
      // `chimera events --follow --limit N` shows them; a reconnection's Last-Event-ID wins, so the
      // client misses nothing it has not seen.
      let tail = resumed ? undefined : q.limit
      // Ids the last store reads sent: a live frame among them was sent already. Live frames are told
      // apart by id, not by `id > sent`: with several replicas (PostgreSQL) another replica's event
      // can come after one of this replica's with a higher id, and must still go out.
      const readIds = new Set<number>()
      // What follows Last-Event-ID comes from the store, as does all a client missed while it fell behind.
      let fromStore = sent >= 0 || tail !== undefined
      let started = false
      let pageSize = PAGE
      const signal = c.req.raw.signal
      const left = followed()
      let gone = false
      const leave = () => {
        sub.close()
        if (!gone) left()
        gone = true
      }
      signal.addEventListener("abort", leave, { once: true })

      type Next = { chunks: Uint8Array[]; sinceMs: number }
      /** The next frames to send and since when they exist, a keep-alive after a quiet while, or null. */
      const next = async (): Promise<Next | null> => {
        if (fromStore || sub.behind) {
          const sinceMs = performance.now()
          // Live frames are held again from here on; any the page below also holds are skipped by id.
          sub.caughtUp()
          if (tail !== undefined) {
            const limit = tail
            tail = undefined
            const first = await storeTurn(() =>
              sub.closed ? null : fleet.eventTailStart({ nodeId: q.node, types: q.type, afterId: q.after, limit }),
            )
            // The replay below reads from just before the oldest of them, in pages, as for `after`.
            sent = first === null ? (q.after ?? 0) : first - 1
          }
          const page = await storeTurn(() =>
            sub.closed ? [] : fleet.listEvents({ nodeId: q.node, types: q.type, afterId: sent, limit: pageSize }),
          )
          readFailed.worked()
          const chunks: Uint8Array[] = []
          let bytes = 0
          for (const e of page) {
            const frame = encodeFrame(e)
            if (chunks.length > 0 && bytes + frame.length > CHUNK_BYTES) break
            chunks.push(frame)
            bytes += frame.length
            sent = e.id
            readIds.add(e.id)
          }
          for (const id of readIds) {
            if (readIds.size <= READ_IDS_KEPT) break
            readIds.delete(id)
          }
          // What did not fit is read again by the next pull, which reads about as many as fitted (large
          // events) or twice as many (small ones); a short page that all fitted means caught up.
          fromStore = page.length === pageSize || chunks.length < page.length
          pageSize = chunks.length < page.length ? Math.max(1, chunks.length) : Math.min(PAGE, pageSize * 2)
          return chunks.length > 0 ? { chunks, sinceMs } : null
        }
        // Store reads go up in id, so the first remembered id is the lowest: below it, a frame may be
        // one read so long ago it was forgotten, and the stream's cursor decides as it always did.
        const floor: number = readIds.values().next().value ?? Number.NEGATIVE_INFINITY
        const frames = sub
          .take(CHUNK_BYTES)
          .filter((f) => !readIds.has(f.event.id) && (f.event.id > sent || f.event.id > floor))
        for (const f of frames) sent = Math.max(sent, f.event.id)
        if (frames.length > 0)
          return { chunks: frames.map((f) => f.bytes), sinceMs: Math.max(...frames.map((f) => f.atMs)) }
        return (await sub.wait(KEEP_ALIVE_MS))
          ? null
          : { chunks: [KEEP_ALIVE], sinceMs: performance.now() - KEEP_ALIVE_MS }
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
              let got: Next | null
              try {
                got = await next()
              } catch (error) {
                // The store failed under a replay or a catch-up (the database away): the stream ends, and
                // its client comes back with Last-Event-ID, as after a lost connection. Left to reject,
                // the pull reset the connection but neither aborted the request nor cancelled the
                // stream, so its slot (and what the fan-out held for it) was never given back.
                readFailed.failed(error)
                return end()
              }
              if (got === null) continue
              if (sub.closed) return end()
              const refused = await credentials.refusal(token, got.sinceMs)
              if (refused !== null) {
                const error = { error: `${refused}; the event stream ends`, code: "AUTHENTICATION_FAILED" }
                return end(encoder.encode(`event: error\ndata: ${JSON.stringify(error)}\n\n`))
              }
              for (const chunk of got.chunks) controller.enqueue(chunk)
              return
            }
          },
          cancel: leave,
        },
        { highWaterMark: 0 },
      )
      return c.body(body, 200, STREAM_HEADERS)
    })
}
