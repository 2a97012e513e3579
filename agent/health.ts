// The heartbeat's NodeHealth: what an operator wants to see of a node at a glance (load, memory, the
// disk that holds the Nix store) next to what Chimera is about (the three links and the desired closure).
// Read fresh for each heartbeat: a few small files and syscalls, nothing that spawns a process.
import { statfs } from "node:fs/promises"
import { freemem, hostname, loadavg, totalmem, uptime } from "node:os"
import type { AgentPhase, NodeHealth, SystemLinks } from "../protocol/agent.ts"
import type { NodeId, StorePath } from "../protocol/ids.ts"
import { VERSION } from "../protocol/version.ts"

export interface HealthInput {
  nodeId: NodeId
  links: SystemLinks
  desired: StorePath | null
  phase: AgentPhase
  heartbeatIntervalSeconds: number
}

export async function collectHealth(input: HealthInput): Promise<NodeHealth> {
  const [memory, disk] = await Promise.all([_memory(), _disk()])
  const [l1 = 0, l5 = 0, l15 = 0] = loadavg()
  return {
    nodeId: input.nodeId,
    agentVersion: VERSION,
    hostname: hostname().slice(0, 255),
    at: new Date().toISOString(),
    uptimeSeconds: Math.max(0, uptime()),
    load: [Math.max(0, l1), Math.max(0, l5), Math.max(0, l15)],
    memory,
    disk,
    system: input.links,
    desired: input.desired,
    phase: input.phase,
    heartbeatIntervalSeconds: input.heartbeatIntervalSeconds,
  }
}

// MemAvailable (Linux 3.14+) counts reclaimable cache; os.freemem() does not and looks alarming on
// any machine that has run a while.
async function _memory(): Promise<NodeHealth["memory"]> {
  const fallback = { totalBytes: totalmem(), availableBytes: freemem() }
  try {
    const text = await Bun.file("/proc/meminfo").text()
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN)
    const total = kb("MemTotal")
    const available = kb("MemAvailable")
    if (!Number.isFinite(total) || !Number.isFinite(available)) return fallback
    return { totalBytes: total * 1024, availableBytes: available * 1024 }
  } catch {
    return fallback
  }
}

// The store's filesystem is the one a deploy fills up; fall back to / where /nix does not exist.
async function _disk(): Promise<NodeHealth["disk"]> {
  for (const path of ["/nix/store", "/"]) {
    try {
      const s = await statfs(path)
      return { path, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize }
    } catch {}
  }
  return { path: "/", totalBytes: 0, freeBytes: 0 }
}
