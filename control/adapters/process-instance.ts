// Which process this is, in a form that outlives it: `PID:START`, where START is the process's start
// time in clock ticks since boot (/proc/PID/stat, field 22). A PID alone is reused; the pair is not,
// so a tag left on a tmux session says whether the control plane that made it is still running.
// Without /proc (not Linux) the tag is `PID:?` and only the PID is checked.
import { readFileSync } from "node:fs"
import type { ProcessInstance } from "../domain/cli-session-model.ts"

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) may hold spaces and parentheses: count fields after the last `)`.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null
  } catch {
    return null
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The tag of process PID (this one by default). */
export function instanceTag(pid: number = process.pid): string {
  return `${pid}:${startTime(pid) ?? "?"}`
}

export function currentProcessInstance(): ProcessInstance {
  return {
    id: instanceTag(),
    isRunning(tag: string): boolean {
      const m = /^(\d+):(\d+|\?)$/.exec(tag)
      if (!m) return false
      const pid = Number(m[1])
      if (m[2] === "?") return pidAlive(pid)
      return startTime(pid) === m[2]
    },
  }
}
