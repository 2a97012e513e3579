// CLI sessions left behind by a control plane that died (SIGKILL, OOM, power loss on a VM that kept
// its tmux server). Such a session is a shell, often root's, that the API no longer lists and nobody
// owns: its history, owner and permissions lived in the dead process's memory. So on start they are
// ended, never adopted: a shell nobody can see is worse than a shell lost. Each one the start ends is
// returned, for the log and the audit trail.
//
// Only sessions named as CLI sessions are (`chimera-cli-` and 16 hex digits) are looked at. One
// whose owner tag names a control plane that still runs (a second one on the same host and tmux
// server) is left to it; one without a tag (a crash between creating and tagging it) is ended.
import { randomUUID } from "node:crypto"
import { createLogger } from "../../protocol/log.ts"
import type { Audit } from "./auth/audit.ts"
import { type CliTmuxPort, CONTROL_PLANE_NODE, type ProcessInstance } from "./cli-session-model.ts"

const log = createLogger("cli-sessions")

export const CLI_SESSION_NAME = /^chimera-cli-[0-9a-f]{16}$/

export interface LeftoverSession {
  sessionId: string
  createdAt: string
  /** The user who opened it, when its tag says. */
  user: string | null
  /** The control plane process that made it (`PID:START`), when its tag says. */
  previousInstance: string | null
}

/** Ends every CLI session no running control plane owns; returns those it ended. */
export async function endLeftoverSessions(tmux: CliTmuxPort, self: ProcessInstance): Promise<LeftoverSession[]> {
  const ended: LeftoverSession[] = []
  for (const s of await tmux.listSessions()) {
    if (!CLI_SESSION_NAME.test(s.id)) continue
    const owner = s.owner ?? null
    // At start this process owns no session, so its own tag (an earlier control plane in the same
    // process, as in tests) marks a leftover too.
    if (owner && owner.instance !== self.id && self.isRunning(owner.instance)) {
      log.info("CLI session belongs to another running control plane; left alone", {
        session: s.id,
        instance: owner.instance,
      })
      continue
    }
    const killed = await tmux.killSession(s.id)
    // Gone already (it exited between the listing and the kill) is as good as ended.
    const leftover = {
      sessionId: s.id,
      createdAt: s.createdAt,
      user: owner?.user || null,
      previousInstance: owner?.instance ?? null,
    }
    log.warn("CLI session left by a control plane that is no longer running: ended", { ...leftover, killed })
    ended.push(leftover)
  }
  return ended
}

/**
 * At start: ends the leftovers and records each in the audit trail (action `cli.session.ended-at-start`,
 * actor `control-plane`). A host without tmux has no sessions to end, and a failure here must not keep
 * the control plane from starting: it is logged as an error instead.
 */
export async function endLeftoverCliSessions(
  cli: { endLeftovers(): Promise<LeftoverSession[]> },
  audit: Pick<Audit, "record">,
): Promise<LeftoverSession[]> {
  let ended: LeftoverSession[]
  try {
    ended = await cli.endLeftovers()
  } catch (error) {
    log.error("could not look for CLI sessions left by a previous control plane", { error })
    return []
  }
  for (const s of ended)
    await audit.record({
      requestId: randomUUID(),
      actor: "control-plane",
      role: null,
      source: null,
      method: "START",
      path: `cli:${s.sessionId}`,
      action: "cli.session.ended-at-start",
      nodeId: CONTROL_PLANE_NODE,
      command: null,
      status: 200,
      result: "ok",
      detail: { ...s, why: "left by a control plane that is no longer running" },
    })
  return ended
}
