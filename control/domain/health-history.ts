// Recent load, memory and disk per node, for the dashboard's charts. Heartbeats overwrite a node's
// health in the store (only the latest is kept, so heartbeat ingest stays one UPDATE per beat); this
// keeps, in memory, one sample per node every SAMPLE_SPACING_S at most and the last SAMPLES of them
// (15 minutes), in one Float32Array per node: about 3.6 KiB a node, 72 MiB for 20,000 nodes. The
// history starts empty when the control plane starts, and each replica holds the heartbeats it took.
import type { NodeHealth } from "../../protocol/agent.ts"

export const SAMPLES = 180
export const SAMPLE_SPACING_S = 5
/** t (seconds since `base`), load1, memory used, memory total, disk used, disk total. */
const FIELDS = 6

export interface HealthSample {
  at: string
  load1: number
  memoryUsedBytes: number
  memoryTotalBytes: number
  diskUsedBytes: number
  diskTotalBytes: number
}

interface Ring {
  data: Float32Array
  /** Index of the next slot to write. */
  next: number
  count: number
  lastAt: number
}

export function createHealthHistory(now: () => number = Date.now) {
  // Float32 holds whole seconds exactly up to 2^24 (194 days) after `base`.
  const base = now()
  const rings = new Map<string, Ring>()

  return {
    /** Keeps the heartbeat's figures if the node's last sample is old enough. */
    record(health: NodeHealth, receivedAtMs: number = now()) {
      const t = (receivedAtMs - base) / 1000
      let ring = rings.get(health.nodeId)
      if (ring && t - ring.lastAt < SAMPLE_SPACING_S) return
      if (!ring) {
        ring = { data: new Float32Array(SAMPLES * FIELDS), next: 0, count: 0, lastAt: t }
        rings.set(health.nodeId, ring)
      }
      const { memory, disk, load } = health
      const { data } = ring
      const at = ring.next * FIELDS
      data[at] = t
      data[at + 1] = load[0]
      data[at + 2] = memory.totalBytes - memory.availableBytes
      data[at + 3] = memory.totalBytes
      data[at + 4] = disk.totalBytes - disk.freeBytes
      data[at + 5] = disk.totalBytes
      ring.next = (ring.next + 1) % SAMPLES
      ring.count = Math.min(ring.count + 1, SAMPLES)
      ring.lastAt = t
    },

    /** The node's samples, oldest first. */
    samples(nodeId: string): HealthSample[] {
      const ring = rings.get(nodeId)
      if (!ring) return []
      const out: HealthSample[] = []
      for (let i = 0; i < ring.count; i++) {
        const slot = (ring.next - ring.count + i + SAMPLES) % SAMPLES
        const f = ring.data.subarray(slot * FIELDS, slot * FIELDS + FIELDS)
        out.push({
          at: new Date(base + (f[0] ?? 0) * 1000).toISOString(),
          load1: f[1] ?? 0,
          memoryUsedBytes: f[2] ?? 0,
          memoryTotalBytes: f[3] ?? 0,
          diskUsedBytes: f[4] ?? 0,
          diskTotalBytes: f[5] ?? 0,
        })
      }
      return out
    },

    forget(nodeId: string) {
      rings.delete(nodeId)
    },
  }
}

export type HealthHistory = ReturnType<typeof createHealthHistory>
