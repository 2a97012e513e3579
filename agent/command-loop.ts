// Commands from the control plane: a long poll (GET /api/agent/:nodeId/commands?wait=25) held open so a
// deploy reaches the node at once without the agent asking every second. An `activate` command makes
// its closure the desired system (persisted, so it is enforced across restarts) and is acknowledged
// once the heal it triggers has finished, with that heal's outcome. Commands run one after another.
import { createLogger } from "../protocol/log.ts"
import { createBackoff, sleep } from "./backoff.ts"
import { ControlError, type OrchestratorPort } from "./control-client.ts"
import type { Reconciler } from "./reconciler.ts"

const log = createLogger("commands")

const WAIT_SECONDS = 25
// A control plane that answers a long poll at once must not turn this loop into a busy one.
const MIN_CYCLE_MS = 1000

export interface CommandLoop {
  stop(): void
}

export function startCommandLoop(client: OrchestratorPort, reconciler: Reconciler): CommandLoop {
  const ac = new AbortController()
  const backoff = createBackoff({ initialMs: 500, maxMs: 15_000, jitter: "full" })

  const ack = async (id: string, success: boolean, output: string) => {
    const retry = createBackoff({ initialMs: 500, maxMs: 5000, jitter: "full" })
    for (let i = 0; i < 5 && !ac.signal.aborted; i++) {
      try {
        await client.ackCommand(id, { success, output: output.slice(0, 65_536) })
        return
      } catch (err) {
        log.warn("command ack failed", { id, error: err instanceof Error ? err.message : String(err) })
        await sleep(retry.next(), ac.signal)
      }
    }
  }

  const poll = async () => {
    const t0 = performance.now()
    const { commands, unsupported } = await client.fetchCommands(WAIT_SECONDS, ac.signal)
    backoff.reset()
    for (const u of unsupported) {
      log.warn("unsupported command", u)
      await ack(u.id, false, `this agent does not support command kind ${u.kind}`)
    }
    for (const command of commands) {
      log.info("command", { id: command.id, kind: command.kind, closure: command.closure })
      const result = await reconciler.activate(command.closure)
      if (ac.signal.aborted) return
      await ack(command.id, result.success, result.output)
    }
    const elapsed = performance.now() - t0
    if (commands.length + unsupported.length === 0 && elapsed < MIN_CYCLE_MS)
      await sleep(MIN_CYCLE_MS - elapsed, ac.signal)
  }

  void (async () => {
    while (!ac.signal.aborted) {
      try {
        await poll()
      } catch (err) {
        if (ac.signal.aborted) return
        const delay = backoff.next()
        const error = err instanceof Error ? err.message : String(err)
        if (err instanceof ControlError && err.refused)
          log.error("command poll refused (credential revoked?)", { error })
        else log.debug("command poll failed", { error, retryInMs: delay })
        await sleep(delay, ac.signal)
      }
    }
  })()

  return {
    stop() {
      ac.abort()
    },
  }
}
