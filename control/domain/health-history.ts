// Recent load, memory and disk per node, for the dashboard's charts. Heartbeats overwrite a node's
// health in the store (only the latest is kept, so heartbeat ingest stays one UPDATE per beat); this
// keeps, in memory, one sample per node every SAMPLE_SPACING_S at most and the last SAMPLES of them
// (15 minutes): 4.2 KiB a node, 84 MiB for 20,000 nodes, allocated 1,024 nodes at a time. The
// history starts empty when the control plane starts, and each replica holds the heartbeats it took.
import type { NodeHealth } from "../../protocol/agent.ts"
import { Slots } from "./slots.ts"

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

/** Nodes per block of storage, 2^BLOCK_BITS: a block is allocated whole (4.4 MB) as the fleet grows. */
const BLOCK_BITS = 10
const BLOCK = 1 << BLOCK_BITS
const SLOT_FLOATS = SAMPLES * FIELDS

/**
 * Each node has a slot (slots.ts) in a block: its samples in the block's one Float32Array, its
 * ring's place and fill and its last sample's time in the block's small arrays. A heartbeat finds its
 * node's slot number and reads one number, where one Float32Array and one ring object per node (20,000
 * of each, scattered over the heap) cost it two more objects to reach.
 */
interface Block {
  samples: Float32Array
  lastAt: Float64Array
  next: Uint16Array
  count: Uint16Array
}

export function createHealthHistory(now: () => number = Date.now) {
  // Float32 holds whole seconds exactly up to 2^24 (194 days) after `base`.
  const base = now()
  const slots = new Slots()
  const blocks: Block[] = []

  return {
    /** Keeps the heartbeat's figures if the node's last sample is old enough. */
    record(health: NodeHealth, receivedAtMs: number = now()) {
      const t = (receivedAtMs - base) / 1000
      let slot = slots.get(health.nodeId)
      const fresh = slot === undefined
      if (slot === undefined) {
        slot = slots.add(health.nodeId)
        if (slot >= blocks.length * BLOCK)
          blocks.push({
            samples: new Float32Array(BLOCK * SLOT_FLOATS),
            lastAt: new Float64Array(BLOCK),
            next: new Uint16Array(BLOCK),
            count: new Uint16Array(BLOCK),
          })
      }
      // The block of the slot and its place in it (no tuple: this runs on every heartbeat).
      const block = blocks[slot >> BLOCK_BITS] as Block
      const i = slot & (BLOCK - 1)
      if (fresh) {
        block.next[i] = 0
        block.count[i] = 0
      } else if (t - (block.lastAt[i] as number) < SAMPLE_SPACING_S) return
      const { memory, disk, load } = health
      const next = block.next[i] as number
      const at = i * SLOT_FLOATS + next * FIELDS
      const data = block.samples
      data[at] = t
      data[at + 1] = load[0]
      data[at + 2] = memory.totalBytes - memory.availableBytes
      data[at + 3] = memory.totalBytes
      data[at + 4] = disk.totalBytes - disk.freeBytes
      data[at + 5] = disk.totalBytes
      block.next[i] = (next + 1) % SAMPLES
      block.count[i] = Math.min((block.count[i] as number) + 1, SAMPLES)
      block.lastAt[i] = t
    },

    /** The node's samples, oldest first. */
    samples(nodeId: string): HealthSample[] {
      const slot = slots.get(nodeId)
      if (slot === undefined) return []
      const block = blocks[slot >> BLOCK_BITS] as Block
      const i = slot & (BLOCK - 1)
      const count = block.count[i] as number
      const next = block.next[i] as number
      const out: HealthSample[] = []
      for (let k = 0; k < count; k++) {
        const at = i * SLOT_FLOATS + ((next - count + k + SAMPLES) % SAMPLES) * FIELDS
        const f = block.samples.subarray(at, at + FIELDS)
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
      slots.delete(nodeId)
    },
  }
}

export type HealthHistory = ReturnType<typeof createHealthHistory>
