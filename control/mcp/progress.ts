// Progress notifications of one tool call, to a client that asked for them (a progressToken in the
// call's _meta). Each says what the call waits on, and the count only grows, as the specification
// requires. While nothing changes the last word is said again every PROGRESS_EVERY_MS: a client that
// restarts its timeout on progress (the SDK's resetTimeoutOnProgress) then waits out a long build, a
// command with a long timeout or a deploy's confirm window. Said once, or only when a deploy's step
// changed, the client's timeout (the SDK's default is 60 s) ran out during a build and cancelled it.
import type { ToolExtra } from "./answers.ts"

/** Below the SDK's default request timeout (60 s), with room for a slow link. */
export const PROGRESS_EVERY_MS = 10_000

export interface Progress {
  /** Says `message` if it is new, or if nothing was said for PROGRESS_EVERY_MS. */
  say(message: string): Promise<void>
  /** Waits for `work`, saying `message` now and again every PROGRESS_EVERY_MS until it settles. */
  during<T>(message: string, work: Promise<T>): Promise<T>
}

export function progressOf(extra: ToolExtra): Progress {
  const token = extra._meta?.progressToken
  let step = 0
  let last: string | null = null
  let at = 0
  const send = async (message: string, again: boolean) => {
    if (token === undefined || extra.signal.aborted) return
    if (message === last && !again && Date.now() - at < PROGRESS_EVERY_MS) return
    last = message
    at = Date.now()
    await extra
      .sendNotification({
        method: "notifications/progress",
        params: { progressToken: token, progress: ++step, message },
      })
      .catch(() => {})
  }
  return {
    say: (message) => send(message, false),
    async during(message, work) {
      void send(message, false)
      const timer = setInterval(() => void send(message, true), PROGRESS_EVERY_MS)
      try {
        return await work
      } finally {
        clearInterval(timer)
      }
    },
  }
}
