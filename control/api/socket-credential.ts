// A WebSocket outlives the upgrade that authenticated it, so its credential is asked again, as an
// event stream's is (stream-credentials.ts): before each frame goes out, by an answer asked no earlier
// than the frame was made, and every RECHECK_MS whether or not anything goes out, so an idle socket
// hears of a revocation too, from whichever replica made it. Frames go out in the order they were made.
// The first refusal ends it all: nothing queued goes out any more and `refused` is told why, once.
import { createLogger } from "../../protocol/log.ts"
import type { StreamCredentials } from "./stream-credentials.ts"

const log = createLogger("socket-credential")

/** How long an idle socket may go on with a credential that was revoked meanwhile. */
const RECHECK_MS = 1000

export interface SocketCredentialOptions {
  credentials: StreamCredentials
  token: string
  /** Told once, with the reason, when the credential is refused. */
  refused: (reason: string) => void
  recheckMs?: number
}

export function socketCredential({ credentials, token, refused, recheckMs = RECHECK_MS }: SocketCredentialOptions) {
  let outgoing: Promise<void> = Promise.resolve()
  let ended = false
  let timer: ReturnType<typeof setInterval> | null = null

  const stop = () => {
    ended = true
    if (timer !== null) clearInterval(timer)
    timer = null
  }
  const refuse = (reason: string) => {
    if (ended) return
    stop()
    refused(reason)
  }

  return {
    /** Asks again every `recheckMs` from now on (once the socket is open). */
    start() {
      if (ended || timer !== null) return
      timer = setInterval(() => {
        // An answer from the last period will do: frames going out ask often enough on their own.
        void credentials.refusal(token, performance.now() - recheckMs).then((reason) => {
          if (reason !== null) refuse(reason)
        })
      }, recheckMs)
      timer.unref()
    },
    /** Runs `act` once everything queued before it has run, if the credential still holds for it. */
    queue(act: () => void): void {
      const madeAt = performance.now()
      outgoing = outgoing
        .then(async () => {
          if (ended) return
          const reason = await credentials.refusal(token, madeAt)
          if (reason !== null) return refuse(reason)
          if (!ended) act()
        })
        .catch((error) => log.warn("a frame could not be sent", { error }))
    },
    /** The socket closed, or was refused by a check of its own: nothing more is asked or sent. */
    stop,
    get ended() {
      return ended
    },
  }
}

export type SocketCredential = ReturnType<typeof socketCredential>
