// A quiet heartbeat held in memory by the SQLite hot path (sqlite-hot-path.ts) until it is written.
// It lives a couple of seconds, long enough to outlast the garbage collector's young generation, so
// what it keeps is paid for again when the old generation is collected and its memory handed back to
// the kernel and faulted in anew: with 20,000 agents a held heartbeat kept its health as JSON text and
// its time as ISO text. A bare Bun.serve that kept as much per request for as long went from 27 to
// 38 µs of CPU a request at 7,000 a second (scripts/bench.ts, 20,000 agents). A held heartbeat now
// keeps its figures as numbers, and its text is made when it is written or read.
import type { NodeHealth } from "../../../protocol/agent.ts"

/**
 * A quiet heartbeat held in memory: its node's row already says everything it says but its time and
 * metrics, so only those (`health`, `last_heartbeat`, `last_heartbeat_ms`) wait to be written.
 */
export interface Held {
  readonly id: string
  readonly rowId: number
  /**
   * The node's report epoch as its row had it: a re-enrolment (a new machine under a removed node's
   * name, or a new credential) moves it on, and a heartbeat held before is then not this node's.
   */
  readonly epoch: number
  /** The health column's text (healthText), made when asked for. */
  readonly health: string
  /** The heartbeat's time as the last_heartbeat column has it (ISO 8601, UTC, milliseconds). */
  readonly at: string
  readonly ms: number
  /** The node's last heartbeat as its row had it when this one was read (the sweep's view). */
  readonly writtenMs: number
  readonly intervalSeconds: number
}

/** A heartbeat's figures, flat: one object, where NodeHealth has four. */
export interface Figures {
  readonly uptimeSeconds: number
  readonly load1: number
  readonly load5: number
  readonly load15: number
  readonly memoryTotalBytes: number
  readonly memoryAvailableBytes: number
  readonly diskPath: string
  readonly diskTotalBytes: number
  readonly diskFreeBytes: number
}

export const figuresOf = (h: NodeHealth): Figures => ({
  uptimeSeconds: h.uptimeSeconds,
  load1: h.load[0],
  load5: h.load[1],
  load15: h.load[2],
  memoryTotalBytes: h.memory.totalBytes,
  memoryAvailableBytes: h.memory.availableBytes,
  diskPath: h.disk.path,
  diskTotalBytes: h.disk.totalBytes,
  diskFreeBytes: h.disk.freeBytes,
})

/** The health column's text (a NodeHealthSummary); both ways a heartbeat is written make it here. */
export function healthText(f: Figures): string {
  return JSON.stringify({
    uptimeSeconds: f.uptimeSeconds,
    load: [f.load1, f.load5, f.load15],
    memory: { totalBytes: f.memoryTotalBytes, availableBytes: f.memoryAvailableBytes },
    disk: { path: f.diskPath, totalBytes: f.diskTotalBytes, freeBytes: f.diskFreeBytes },
  })
}

/** A held heartbeat, one object of numbers (and its disk's path, usually the string it had before). */
export class HeldBeat implements Held, Figures {
  readonly uptimeSeconds: number
  readonly load1: number
  readonly load5: number
  readonly load15: number
  readonly memoryTotalBytes: number
  readonly memoryAvailableBytes: number
  readonly diskPath: string
  readonly diskTotalBytes: number
  readonly diskFreeBytes: number

  constructor(
    readonly id: string,
    readonly rowId: number,
    readonly epoch: number,
    readonly ms: number,
    readonly writtenMs: number,
    readonly intervalSeconds: number,
    h: NodeHealth,
    /** The node's previous held heartbeat: its disk path string is kept when it is the same. */
    previous: HeldBeat | undefined,
  ) {
    this.uptimeSeconds = h.uptimeSeconds
    this.load1 = h.load[0]
    this.load5 = h.load[1]
    this.load15 = h.load[2]
    this.memoryTotalBytes = h.memory.totalBytes
    this.memoryAvailableBytes = h.memory.availableBytes
    this.diskPath = previous?.diskPath === h.disk.path ? previous.diskPath : h.disk.path
    this.diskTotalBytes = h.disk.totalBytes
    this.diskFreeBytes = h.disk.freeBytes
  }

  get health(): string {
    return healthText(this)
  }

  get at(): string {
    return new Date(this.ms).toISOString()
  }
}
