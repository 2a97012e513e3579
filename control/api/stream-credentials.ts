// Event streams (and CLI sockets, socket-credential.ts) ask for their credential again before they send
// anything, so a revoked token, an ended session or a lost role ends a stream at its next frame. Asked
// per stream and per frame, that is one store read per stream per event: 2,000 streams under a flood
// of reports queued reads faster than the store answered and grew without bound. So streams that share
// a credential share the question: an answer counts for whatever was published (or read from the
// store) before the question was asked, which is exactly as strict as asking again, since a revocation
// the answer did not see happened after the event it lets through was already out.
import { failureLog } from "../../protocol/failure-log.ts"
import { createLogger } from "../../protocol/log.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { can, type Permission } from "../domain/auth/roles.ts"
import { ChimeraError } from "../domain/errors.ts"

const log = createLogger("stream-credentials")
/** Checks that found the store away: every stream's every frame while it lasts, said once a minute. */
const recheckFailed = failureLog(log, "could not check streams' credentials again; asking at the next frame")

interface Asked {
  atMs: number
  refusal: Promise<string | null>
}

/** Answers kept per credential are forgotten after this long unused. */
const FORGET_AFTER_MS = 60_000

/** `permission`: what the streams need to go on (an event stream reads the fleet). */
export function streamCredentials(authenticator: Authenticator, permission: Permission = "fleet:read") {
  const asked = new Map<string, Asked>()
  let sweptAt = 0

  const ask = (token: string, nowMs: number): Asked => {
    const entry: Asked = { atMs: nowMs, refusal: Promise.resolve(null) }
    entry.refusal = authenticator.authenticate(token).then(
      (p) => {
        if (recheckFailed.failing) recheckFailed.worked()
        return p.kind === "user" && can(p.role, permission) ? null : `the credential no longer has ${permission}`
      },
      (error: unknown) => {
        // The authenticator's own refusals are ChimeraErrors. Anything else is the store failing for a
        // moment (a PostgreSQL failover, a reset connection): a credential already accepted goes on, and
        // the next frame asks again, rather than every open stream ending as if it had been revoked.
        if (error instanceof ChimeraError) return error.message
        recheckFailed.failed(error)
        if (asked.get(token) === entry) asked.delete(token)
        return null
      },
    )
    asked.set(token, entry)
    if (nowMs - sweptAt > FORGET_AFTER_MS) {
      sweptAt = nowMs
      for (const [t, a] of asked) if (nowMs - a.atMs > FORGET_AFTER_MS) asked.delete(t)
    }
    return entry
  }

  return {
    /**
     * Why `token` may no longer go on, or null when it may, from a question asked no earlier
     * than `sinceMs` (performance.now()): the newest one for this credential, or a new one.
     */
    refusal(token: string, sinceMs: number): Promise<string | null> {
      const last = asked.get(token)
      if (last && last.atMs >= sinceMs) return last.refusal
      return ask(token, performance.now()).refusal
    },
  }
}

export type StreamCredentials = ReturnType<typeof streamCredentials>
