// The dashboard's rows without a control plane: each target's three system links read over SSH
// (control/adapters/ssh/system-state.ts) every `interval` seconds, each target on its own clock.
// Without a control plane there is no desired closure to compare with, so the status says what the node itself shows: `ok` when it
// runs its profile's system, `runtime-drift` when it runs another, `unreachable` when SSH failed.

import { terminalLine as sanitize } from "../../protocol/terminal-text.ts"
import type { SshExecutor } from "../adapters/ssh/index.ts"
import { mapLimit } from "../domain/map-limit.ts"
import type { SystemState, Target } from "../domain/operation-ports.ts"
import type { RowSource } from "./control-plane-source.ts"
import type { DashRow } from "./model.ts"

const short = (path: string | null) => (path ? path.slice(11, 23) : "-")

function stateRow(target: Target, state: SystemState, at: string): DashRow {
  const runtime = state.current !== state.profile
  const reboot = state.booted !== null && state.current !== null && state.booted !== state.current
  const status = state.current === null ? "unknown" : runtime ? "runtime-drift" : "ok"
  return {
    name: sanitize(target.name),
    status,
    desired: "-",
    current: short(state.current),
    heartbeat: at,
    drift: runtime ? "runtime-drift" : "",
    reboot,
    detail: () => [
      ["target", sanitize(`${target.user}@${target.host}:${target.port}`)],
      ["profile", state.profile ?? "-"],
      ["current", state.current ?? "-"],
      ["booted", `${state.booted ?? "-"}${reboot ? "  (reboot needed)" : ""}`],
      ["checked", at],
    ],
    data: {
      target: target.name,
      status,
      ...state,
      drift: runtime ? ["runtime-drift"] : [],
      rebootRequired: reboot,
      checkedAt: at,
    },
  }
}

function failedRow(target: Target, error: string, previous: DashRow | undefined): DashRow {
  const message = sanitize(error).slice(0, 300)
  return {
    name: sanitize(target.name),
    status: "unreachable",
    desired: "-",
    current: previous?.current ?? "-",
    heartbeat: previous?.heartbeat ?? null,
    drift: "",
    reboot: false,
    detail: () => [
      ["target", sanitize(`${target.user}@${target.host}:${target.port}`)],
      ["error", message],
    ],
    data: {
      target: target.name,
      status: "unreachable",
      error,
      // What the last read that answered saw, if one did.
      lastSeen: previous?.data.status === "unreachable" ? (previous.data.lastSeen ?? null) : (previous?.data ?? null),
    },
  }
}

/** A target whose first read has not answered yet: listed, so the count does not grow as they come in. */
function pendingRow(target: Target): DashRow {
  const where = sanitize(`${target.user}@${target.host}:${target.port}`)
  return {
    name: sanitize(target.name),
    status: "unknown",
    desired: "-",
    current: "-",
    heartbeat: null,
    drift: "",
    reboot: false,
    detail: () => [
      ["target", where],
      ["state", "first read under way"],
    ],
    data: { target: target.name, status: "unknown" },
  }
}

export function sshSource(targets: Target[], exec: SshExecutor, parallel: number, intervalSeconds: number): RowSource {
  const last = new Map<string, DashRow>()
  const readOne = async (t: Target) => {
    let row: DashRow
    try {
      row = stateRow(t, await exec.systemState(t), new Date().toISOString())
    } catch (error) {
      row = failedRow(t, (error as Error).message, last.get(sanitize(t.name)))
    }
    last.set(row.name, row)
    return row
  }
  return {
    name: `ssh: ${targets.length} target${targets.length === 1 ? "" : "s"}`,
    read: () => mapLimit(targets, parallel, readOne),
    follow(update) {
      // Each target on its own clock, at most `parallel` reads at once: a node that hangs until the
      // SSH timeout (30 s) holds its own row back, not every other one (they all froze with it).
      let stopped = false
      const timers = new Set<ReturnType<typeof setTimeout>>()
      const queue: Target[] = []
      let running = 0
      let drawPending = false
      const draw = () => {
        if (drawPending) return
        drawPending = true
        // Answers that come together (the first round, 1,000 targets) make one frame.
        setTimeout(() => {
          drawPending = false
          if (!stopped)
            update(
              targets.map((t) => last.get(sanitize(t.name)) ?? pendingRow(t)),
              null,
            )
        }, 50)
      }
      const next = () => {
        while (!stopped && running < parallel && queue.length > 0) {
          const t = queue.shift() as Target
          running++
          void readOne(t).then(() => {
            running--
            if (stopped) return
            draw()
            const timer = setTimeout(() => {
              timers.delete(timer)
              queue.push(t)
              next()
            }, intervalSeconds * 1000)
            timers.add(timer)
            next()
          })
        }
      }
      queue.push(...targets)
      next()
      return {
        stop() {
          stopped = true
          for (const timer of timers) clearTimeout(timer)
        },
      }
    },
  }
}
