// Live event streams for many viewers at about the cost of one. The fan-out subscribes to the event
// bus once and encodes each event as a Server-Sent Events frame once; every stream whose filter
// matches is handed the same bytes. What a stream holds for its client is bounded: past
// `pendingBytes` (a client that reads slowly, or only the headers), or when live delivery to all
// streams passes `liveBytesPerSecond`, its frames are dropped and it is marked behind, so it catches up from the store when its client reads again, missing nothing and
// holding nothing meanwhile. Streams are counted per owner (a user, or an API token) and
// in total; one past either cap is a 429 that says which cap and how to raise it.
import { createLogger } from "../../protocol/log.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { FleetEvent } from "../domain/events.ts"
import type { EventBusPort } from "../domain/ports.ts"
import { redactedJsonText } from "./redact-answers.ts"

const log = createLogger("event-streams")

export interface StreamLimits {
  /** Open streams one owner may hold ([limits] event_streams_per_user). */
  perUser: number
  /** Open streams in all ([limits] event_streams). */
  total: number
  /** Bytes of frames a stream may hold for a client that has not read them. */
  pendingBytes: number
  /** Bytes of live frames handed to all streams together per second; past it, streams fall behind. */
  liveBytesPerSecond: number
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  perUser: 16,
  total: 1000,
  pendingBytes: 1024 * 1024,
  liveBytesPerSecond: 64 * 1024 * 1024,
}

export interface Frame {
  event: FleetEvent
  bytes: Uint8Array
  /** When the fan-out received it (performance.now()). */
  atMs: number
}

const encoder = new TextEncoder()

/**
 * One event as an SSE frame. JSON.stringify escapes every newline, so `data` is a single line. Its
 * secret-looking strings are redacted as in GET /api/events: a node's failed heal can quote a
 * password or a token from its output, and every stream (live or replayed) is made here.
 */
export const encodeFrame = (e: FleetEvent): Uint8Array =>
  encoder.encode(`id: ${e.id}\nevent: ${e.type}\ndata: ${redactedJsonText(e)}\n\n`)

export interface Subscription {
  /** The oldest frames held for the client, up to `maxBytes` (at least one); the rest stay held. */
  take(maxBytes: number): Frame[]
  /** True once frames were dropped: the stream must read the store after its last sent id. */
  readonly behind: boolean
  /** Clears `behind` once the stream has caught up from the store. */
  caughtUp(): void
  /** Resolves true when a frame arrives, it falls behind or closes; false when `ms` pass first. */
  wait(ms: number): Promise<boolean>
  readonly closed: boolean
  /** Frees the slot; idempotent. */
  close(): void
}

interface Slot {
  owner: string
  matches: (e: FleetEvent) => boolean
  frames: Frame[]
  bytes: number
  behind: boolean
  wake: (() => void) | null
}

export function createEventFanout(bus: EventBusPort, limits: StreamLimits = DEFAULT_STREAM_LIMITS) {
  const slots = new Set<Slot>()
  const perOwner = new Map<string, number>()
  let unsubscribe: (() => void) | null = null

  // What live delivery may hand out: subscribers × event bytes is the cost of a fan-out (2,000 streams
  // × a 3 MB batch of reports is 6 GB of socket writes), so past this rate streams fall behind and
  // catch up from the store, whose readers take turns.
  let budget = limits.liveBytesPerSecond
  let refilledAt = performance.now()

  const deliver = (event: FleetEvent) => {
    let frame: Frame | null = null
    for (const slot of slots) {
      if (slot.behind || !slot.matches(event)) continue
      frame ??= { event, bytes: encodeFrame(event), atMs: performance.now() }
      if (frame.atMs > refilledAt) {
        budget = Math.min(
          limits.liveBytesPerSecond,
          budget + ((frame.atMs - refilledAt) / 1000) * limits.liveBytesPerSecond,
        )
        refilledAt = frame.atMs
      }
      if (budget < frame.bytes.length || slot.bytes + frame.bytes.length > limits.pendingBytes) {
        // Drop what it holds: the store has it all, and reading the store is the client's cost, paid
        // only when it reads, whereas holding frames for a client that never reads costs us forever.
        slot.frames = []
        slot.bytes = 0
        slot.behind = true
        log.info("event stream fell behind; it will catch up from the store", { owner: slot.owner })
      } else {
        slot.frames.push(frame)
        slot.bytes += frame.bytes.length
        budget -= frame.bytes.length
      }
      slot.wake?.()
    }
  }

  const release = (slot: Slot) => {
    if (!slots.delete(slot)) return
    const left = (perOwner.get(slot.owner) ?? 1) - 1
    if (left > 0) perOwner.set(slot.owner, left)
    else perOwner.delete(slot.owner)
    slot.frames = []
    slot.wake?.()
    if (slots.size === 0) {
      unsubscribe?.()
      unsubscribe = null
    }
  }

  return {
    limits,
    /** Open streams, and bytes held for their clients (the benchmark and tests read it). */
    stats: () => ({ streams: slots.size, pendingBytes: [...slots].reduce((n, s) => n + s.bytes, 0) }),

    /** A new stream for `owner`, or RESOURCE_EXHAUSTED (429) past a cap. */
    open(owner: string, matches: (e: FleetEvent) => boolean): Subscription {
      if (slots.size >= limits.total)
        throw new ChimeraError(
          "RESOURCE_EXHAUSTED",
          `the control plane already serves ${limits.total} event streams, its limit ([limits] event_streams); try again later`,
          { limit: limits.total, scope: "total" },
        )
      const held = perOwner.get(owner) ?? 0
      if (held >= limits.perUser)
        throw new ChimeraError(
          "RESOURCE_EXHAUSTED",
          `you already have ${held} event streams open, the limit per user ([limits] event_streams_per_user); close one first`,
          { limit: limits.perUser, scope: "user" },
        )
      const slot: Slot = { owner, matches, frames: [], bytes: 0, behind: false, wake: null }
      slots.add(slot)
      perOwner.set(owner, held + 1)
      unsubscribe ??= bus.subscribe(deliver)
      return {
        take(maxBytes) {
          let n = 0
          let bytes = 0
          for (const f of slot.frames) {
            if (n > 0 && bytes + f.bytes.length > maxBytes) break
            bytes += f.bytes.length
            n++
          }
          const taken = slot.frames.splice(0, n)
          slot.bytes -= bytes
          return taken
        },
        get behind() {
          return slot.behind
        },
        caughtUp() {
          slot.behind = false
        },
        get closed() {
          return !slots.has(slot)
        },
        wait(ms) {
          if (slot.frames.length > 0 || slot.behind || !slots.has(slot)) return Promise.resolve(true)
          return new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => done(false), ms)
            const done = (woken: boolean) => {
              clearTimeout(timer)
              slot.wake = null
              resolve(woken)
            }
            slot.wake = () => done(true)
          })
        },
        close: () => release(slot),
      }
    },
  }
}

export type EventFanout = ReturnType<typeof createEventFanout>
