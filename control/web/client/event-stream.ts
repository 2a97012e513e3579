// The live event stream (GET /api/events/stream), read with fetch rather than EventSource, which
// cannot send an Authorization header. Each connection resumes with Last-Event-ID, so events that
// happen while it reconnects are replayed by the control plane, not lost; a 401 (or the stream's own
// `error` frame saying the credential no longer holds) ends the session instead of retrying.
import { parseShown } from "./shown-json.ts"
import type { FleetEvent } from "./types.ts"

export type StreamState = "connecting" | "live" | "reconnecting" | "stopped"

export interface StreamHandlers {
  token(): string | null
  /** The id to resume after on the first connection (the newest event when the page started). */
  start(): Promise<number>
  onEvent(event: FleetEvent): void
  onState(state: StreamState): void
  /** The credential was refused: the caller ends the session. */
  onUnauthorized(message: string): void
}

interface Frame {
  id: string | null
  event: string
  data: string
}

/** Splits a text/event-stream body into frames (the WHATWG rules the control plane's writer follows). */
export function parseFrames(buffer: string): { frames: Frame[]; rest: string } {
  const frames: Frame[] = []
  const blocks = buffer.split(/\r?\n\r?\n/)
  const rest = blocks.pop() ?? ""
  for (const block of blocks) {
    let id: string | null = null
    let event = "message"
    const data: string[] = []
    for (const line of block.split(/\r?\n/)) {
      if (line === "" || line.startsWith(":")) continue
      const colon = line.indexOf(":")
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "id") id = value
      else if (field === "event") event = value
      else if (field === "data") data.push(value)
    }
    if (data.length > 0 || id !== null) frames.push({ id, event, data: data.join("\n") })
  }
  return { frames, rest }
}

/**
 * How long a hidden tab keeps its stream. A browser opens at most 6 connections to one host over
 * HTTP/1.1, and each open stream holds one for good: tabs left open in the background would leave
 * none for the next tab's requests, which would wait for ever. A hidden tab lets its stream go after
 * this, and opens it again when shown, resuming with Last-Event-ID, so it misses nothing.
 */
export const HIDDEN_GRACE_MS = 5_000

/** Resolves when the page is shown (at once if it is), or when `stopped` aborts: a stream stopped in a hidden tab waits for nothing. */
function _shown(stopped: AbortSignal): Promise<void> {
  if (typeof document === "undefined" || !document.hidden || stopped.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      document.removeEventListener("visibilitychange", seen)
      stopped.removeEventListener("abort", done)
      resolve()
    }
    const seen = () => {
      if (!document.hidden) done()
    }
    document.addEventListener("visibilitychange", seen)
    stopped.addEventListener("abort", done)
  })
}

export function openEventStream(h: StreamHandlers) {
  let lastId: string | null = null
  const stopping = new AbortController()
  const stopped = () => stopping.signal.aborted
  let ac = new AbortController()
  let retryMs = 1000
  /** The stream was let go on purpose (the page is hidden, or the token was renewed): it comes back without a pause. */
  let parked = false
  let parking: ReturnType<typeof setTimeout> | undefined
  const onVisibility = () => {
    clearTimeout(parking)
    if (!document.hidden) return
    parking = setTimeout(() => {
      parked = true
      ac.abort()
    }, HIDDEN_GRACE_MS)
  }
  if (typeof document !== "undefined") document.addEventListener("visibilitychange", onVisibility)

  const connectOnce = async (token: string): Promise<"retry" | "unauthorized" | "stopped"> => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "text/event-stream" }
    if (lastId !== null) headers["last-event-id"] = lastId
    const res = await fetch("/api/events/stream", {
      headers,
      signal: ac.signal,
      credentials: "omit",
      cache: "no-store",
    })
    // Refused with a token the session has since renewed: connect again with the new one.
    if (res.status === 401 && h.token() !== token) return "retry"
    if (res.status === 401) {
      const body = await res
        .text()
        .then((text) => parseShown<{ error?: string }>(text))
        .catch(() => ({}) as { error?: string })
      h.onUnauthorized(body.error ?? "the credential was refused")
      return "unauthorized"
    }
    if (!res.ok || !res.body) return "retry"
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ""
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return stopped() ? "stopped" : "retry"
      buffer += value
      const { frames, rest } = parseFrames(buffer)
      buffer = rest
      for (const f of frames) {
        if (f.event === "ready") {
          retryMs = 1000
          h.onState("live")
          continue
        }
        if (f.event === "error") {
          const body = parseShown<{ error?: string; code?: string }>(f.data)
          if (body.code === "AUTHENTICATION_FAILED" && h.token() !== token) return "retry"
          if (body.code === "AUTHENTICATION_FAILED") {
            h.onUnauthorized(body.error ?? "the credential no longer holds")
            return "unauthorized"
          }
          return "retry"
        }
        if (f.id !== null) lastId = f.id
        h.onEvent(parseShown<FleetEvent>(f.data))
      }
    }
  }

  void (async () => {
    h.onState("connecting")
    try {
      lastId = String(await h.start())
    } catch {
      // a 401 has ended the session already; anything else: the stream starts from now
    }
    while (!stopped()) {
      // A tab opened in the background connects once it is first shown.
      await _shown(stopping.signal)
      if (stopped()) break
      const token = h.token()
      if (!token) break
      let outcome: "retry" | "unauthorized" | "stopped"
      try {
        outcome = await connectOnce(token)
      } catch {
        outcome = stopped() ? "stopped" : "retry"
      }
      if (outcome !== "retry" || stopped()) break
      h.onState("reconnecting")
      ac = new AbortController()
      if (parked) {
        parked = false
        continue
      }
      await new Promise((r) => setTimeout(r, retryMs))
      retryMs = Math.min(retryMs * 2, 15_000)
    }
    h.onState("stopped")
  })()

  return {
    /** Connects again at once (with the token `token()` now gives), resuming after the last event. */
    reconnect() {
      if (stopped()) return
      parked = true
      ac.abort()
    },
    stop() {
      stopping.abort()
      clearTimeout(parking)
      if (typeof document !== "undefined") document.removeEventListener("visibilitychange", onVisibility)
      ac.abort()
    },
    lastEventId: () => lastId,
  }
}
