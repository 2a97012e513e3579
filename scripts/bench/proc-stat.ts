// A process's CPU time from /proc/PID/stat, for the benchmarks that price work in CPU: the load
// generator (its servers and PostgreSQL), the side-by-side comparison and the agent at rest. No imports
// beyond node:, so that the load generator's own process stays as light as it is.
import { readFile } from "node:fs/promises"

/** A process's CPU seconds so far: in total, and the kernel's part (system time); 0 once it has ended. */
export async function cpuTicks(pid: number): Promise<{ total: number; kernel: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null)
  if (stat === null) return { total: 0, kernel: 0 } // a process that ended (a PostgreSQL backend) counts no more
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // utime + stime, in clock ticks (USER_HZ = 100)
  return { total: (Number(f[11]) + Number(f[12])) / 100, kernel: Number(f[12]) / 100 }
}
