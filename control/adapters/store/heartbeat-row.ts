// What a heartbeat writes to its node's row, column by column, and which of those columns say
// something new (its state) rather than only its time and metrics: the SQL store writes the first
// (heartbeat-store.ts), and the SQLite hot path holds a heartbeat whose state its row already says
// (sqlite-hot-path.ts).
import type { NodeHealth } from "../../../protocol/agent.ts"
import { figuresOf, HeldBeat, healthText } from "./held-beat.ts"
import type { CredentialRow } from "./known-rows.ts"

/** The columns a heartbeat sets, in the order of heartbeatValues (after the node id). */
export const HEARTBEAT_COLUMNS = [
  "hostname",
  "agent_version",
  "profile_path",
  "current_path",
  "booted_path",
  "agent_desired_path",
  "phase",
  "health",
  "heartbeat_interval",
  "last_heartbeat",
  "last_heartbeat_ms",
] as const

export type Beat = { h: NodeHealth; receivedAt: string }
export type BeatResult = { wasUnreachable: boolean; desiredPath: string | null }

/** What a heartbeat writes, column by column (HEARTBEAT_COLUMNS). */
export function heartbeatValues({ h, receivedAt }: Beat): (string | number | null)[] {
  return [
    h.hostname,
    h.agentVersion,
    h.system.profile,
    h.system.current,
    h.system.booted,
    h.desired,
    h.phase,
    healthText(figuresOf(h)),
    h.heartbeatIntervalSeconds,
    receivedAt,
    Date.parse(receivedAt),
  ]
}

/** The latest of each node's heartbeats in a batch: a node twice in one batch (a retry) is written once. */
export function lastOfEach(beats: Beat[]): Map<string, number> {
  const last = new Map<string, number>()
  for (let i = 0; i < beats.length; i++) last.set((beats[i] as Beat).h.nodeId, i)
  return last
}

/** What a heartbeat sets beyond its time and metrics: when one of these changes it is written at once. */
const STATE_COLUMNS = HEARTBEAT_COLUMNS.filter((c) => !["health", "last_heartbeat", "last_heartbeat_ms"].includes(c))
/** Each of those with its place in heartbeatValues, looked up once rather than per heartbeat. */
export const STATE_AT = STATE_COLUMNS.map((c) => [c, HEARTBEAT_COLUMNS.indexOf(c)] as const)
/**
 * Each of those as a heartbeat says it, read from the heartbeat itself: a quiet one is found without
 * building its row (heartbeatValues), and heartbeatValues must agree (a test checks).
 */
export const STATE_OF: readonly (readonly [(typeof STATE_COLUMNS)[number], (h: NodeHealth) => unknown])[] = [
  ["hostname", (h) => h.hostname],
  ["agent_version", (h) => h.agentVersion],
  ["profile_path", (h) => h.system.profile],
  ["current_path", (h) => h.system.current],
  ["booted_path", (h) => h.system.booted],
  ["agent_desired_path", (h) => h.desired],
  ["phase", (h) => h.phase],
  ["heartbeat_interval", (h) => h.heartbeatIntervalSeconds],
]
/** What a heartbeat reads of its node's row. */
export const STATE = `rowid AS row_id, epoch, desired_path, unreachable, last_heartbeat_ms, ${STATE_COLUMNS.join(", ")}`
export const LAST_MS = HEARTBEAT_COLUMNS.indexOf("last_heartbeat_ms")

/**
 * The heartbeat to hold in place of a write when it says nothing new against its node's row (`row`,
 * `before` its node's heartbeat held now), or null. A node's first heartbeat since the handle opened
 * at `openedMs` (its row's time is from before: the control plane was down) is written at once; held,
 * the whole fleet's would fall due together. After that a heartbeat is quiet however late: a node
 * silent long enough is marked unreachable by the sweep (and then written at once), and one late
 * because this control plane is behind must not cost a full write, which put it further behind (it was
 * written at once after two intervals: the overload snowball of BENCHMARKS.md, at 7,000/s with nodes
 * 2.9 s apart at a 2 s interval).
 */
export function quietBeat(
  beat: Beat,
  row: CredentialRow | null | undefined,
  before: HeldBeat | undefined,
  openedMs: number,
): HeldBeat | null {
  // The hot path's rows come from bun:sqlite, whose numbers are JS numbers: read as they are. Through
  // `Number()` the optimising JIT left its code for the slower tier on about a third of the calls
  // (an "Overflow" speculation failure, BUN_JSC_printEachOSRExit=true), over and over.
  const last = row?.last_heartbeat_ms
  if (row == null || (row.unreachable ?? 0) !== 0 || typeof last !== "number") return null
  if (Math.max(last, before?.ms ?? 0) < openedMs) return null
  for (const [c, of] of STATE_OF) if (row[c] !== of(beat.h)) return null
  return new HeldBeat(
    beat.h.nodeId,
    row.row_id as number,
    row.epoch as number,
    Date.parse(beat.receivedAt),
    last,
    row.heartbeat_interval as number,
    beat.h,
    before,
  )
}
