// The dashboard's rows without a control plane: each target's three system links read over SSH
// (control/adapters/ssh/system-state.ts) every `interval` seconds. Without a control plane there is
// no desired closure to compare with, so the status says what the node itself shows: `ok` when it
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
    detail: [
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
    detail: [
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

export function sshSource(targets: Target[], exec: SshExecutor, parallel: number, intervalSeconds: number): RowSource {
  const last = new Map<string, DashRow>()
  const read = async () => {
    const rows = await mapLimit(targets, parallel, async (t) => {
      try {
        return stateRow(t, await exec.systemState(t), new Date().toISOString())
      } catch (error) {
        return failedRow(t, (error as Error).message, last.get(t.name))
      }
    })
    for (const r of rows) last.set(r.name, r)
    return rows
  }
  return {
    name: `ssh: ${targets.length} target${targets.length === 1 ? "" : "s"}`,
    read,
    follow(update) {
      let stopped = false
      let timer: ReturnType<typeof setTimeout> | null = null
      const tick = async () => {
        const rows = await read()
        if (stopped) return
        update(rows, null)
        timer = setTimeout(tick, intervalSeconds * 1000)
      }
      void tick()
      return {
        stop() {
          stopped = true
          if (timer) clearTimeout(timer)
        },
      }
    },
  }
}
