// A CLI session's history (GET /api/cli/sessions/{id}/history): the commands sent to it and
// the output they produced, in order, kept in memory and bounded both in entries and in bytes, so a
// chatty command cannot grow the control plane without end. The oldest entries go first.
import { z } from "zod"

export const HistoryType = z.enum(["command", "output", "completion", "error"])
export type HistoryType = z.infer<typeof HistoryType>

export interface HistoryEntry {
  id: string
  type: HistoryType
  timestamp: string
  content: string
  metadata: Record<string, unknown>
}

export const HistoryQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    before: z.iso.datetime().optional(),
    after: z.iso.datetime().optional(),
  })
  .strict()
export type HistoryQuery = z.infer<typeof HistoryQuery>

export const HISTORY_MAX_ENTRIES = 1000
export const HISTORY_MAX_BYTES = 1024 * 1024

export function createHistory(maxEntries = HISTORY_MAX_ENTRIES, maxBytes = HISTORY_MAX_BYTES) {
  const entries: { entry: HistoryEntry; at: number; bytes: number }[] = []
  let bytes = 0
  let next = 1

  return {
    add(type: HistoryType, at: Date, content: string, metadata: Record<string, unknown> = {}): HistoryEntry {
      // One entry never holds more than the whole budget; the rest of a huge chunk is cut.
      const kept = content.length > maxBytes ? content.slice(0, maxBytes) : content
      const entry = { id: `msg-${next++}`, type, timestamp: at.toISOString(), content: kept, metadata }
      const size = Buffer.byteLength(kept)
      entries.push({ entry, at: at.getTime(), bytes: size })
      bytes += size
      while (entries.length > maxEntries || (bytes > maxBytes && entries.length > 1))
        bytes -= entries.shift()?.bytes ?? 0
      return entry
    },
    /** `after` alone pages forward from the oldest; otherwise the newest `limit` before `before`. */
    query({ limit, before, after }: HistoryQuery): { history: HistoryEntry[]; hasMore: boolean } {
      const lo = after === undefined ? Number.NEGATIVE_INFINITY : Date.parse(after)
      const hi = before === undefined ? Number.POSITIVE_INFINITY : Date.parse(before)
      const range = entries.filter((e) => e.at > lo && e.at < hi).map((e) => e.entry)
      const page = after !== undefined && before === undefined ? range.slice(0, limit) : range.slice(-limit)
      return { history: page, hasMore: range.length > page.length }
    },
    size: () => ({ entries: entries.length, bytes }),
  }
}

export type History = ReturnType<typeof createHistory>
