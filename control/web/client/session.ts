// The signed-in session, kept only in this page's memory: never in localStorage, sessionStorage, a
// cookie or a URL, so a script injected elsewhere on the origin finds nothing stored to steal and a
// reload means signing in again. A login session (JWT) is refreshed before it expires; an API token
// is used as given. `end` forgets the token and tells the page why, which brings back the sign-in.
import type { Me } from "./types.ts"

export interface SignedIn {
  token: string
  me: Me
  /** Login sessions only. */
  expiresAt: string | null
}

type Listener = () => void

export function createSession() {
  let current: SignedIn | null = null
  let reason: string | null = null
  let refreshTimer: ReturnType<typeof setTimeout> | undefined
  const listeners = new Set<Listener>()
  const notify = () => {
    for (const l of listeners) l()
  }

  const session = {
    token: () => current?.token ?? null,
    current: () => current,
    /** Why the last session ended (shown on the sign-in screen), if it did not end by signing out. */
    endReason: () => reason,
    start(next: SignedIn, refresh?: (s: SignedIn) => Promise<SignedIn>) {
      clearTimeout(refreshTimer)
      current = next
      reason = null
      if (next.expiresAt && refresh) {
        // Refresh at 80 % of what is left; a failed refresh ends the session through its 401.
        const left = Date.parse(next.expiresAt) - Date.now()
        refreshTimer = setTimeout(
          () => {
            if (current?.token !== next.token) return
            refresh(next).then(
              (s) => session.start(s, refresh),
              () => {},
            )
          },
          Math.max(5_000, left * 0.8),
        )
      }
      notify()
    },
    end(why: string | null) {
      clearTimeout(refreshTimer)
      if (!current) return
      current = null
      reason = why
      notify()
    },
    subscribe(listener: Listener) {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    can: (permission: string) => current?.me.permissions.includes(permission) ?? false,
  }
  return session
}

export type Session = ReturnType<typeof createSession>
