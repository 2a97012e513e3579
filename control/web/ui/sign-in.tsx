// Sign-in with a user's name and password (POST /api/auth/login) or a pasted API token. Either way
// the token is checked with GET /api/auth/me, which also says what the role may do, and kept only in
// memory (client/session.ts). Errors are the API's own words: wrong password, rate limited, …
import { useState } from "preact/hooks"
import { type Api, ApiError } from "../client/api.ts"
import { preloadNodes } from "../client/fleet-store.ts"
import type { Session, SignedIn } from "../client/session.ts"
import type { Me } from "../client/types.ts"

async function whoAmI(token: string): Promise<Me> {
  preloadNodes(token)
  const res = await fetch("/api/auth/me", { headers: { authorization: `Bearer ${token}` }, credentials: "omit" })
  const body = (await res.json().catch(() => ({}))) as Me & { error?: string; message?: string; code?: string }
  // A rate limit's `error` is only its code; its `message` says when to try again.
  if (!res.ok) throw new ApiError(res.status, body.message ?? body.error ?? `${res.status}`, body.code ?? null)
  return body
}

export function SignIn({ session, api }: { session: Session; api: Api }) {
  const [mode, setMode] = useState<"password" | "token">("password")
  const [username, setUsername] = useState("")
  const [password, setPassword] = useState("")
  const [token, setToken] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const reason = session.endReason()

  const refresh = async (s: SignedIn): Promise<SignedIn> => {
    const next = await api.post<{ token: string; expiresAt: string }>("/api/auth/refresh", {})
    return { ...s, token: next.token, expiresAt: next.expiresAt }
  }

  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      if (mode === "password") {
        const res = await fetch("/api/auth/login", {
          method: "POST",
          headers: { "content-type": "application/json" },
          credentials: "omit",
          body: JSON.stringify({ username, password }),
        })
        const body = (await res.json().catch(() => ({}))) as {
          token?: string
          expiresAt?: string
          error?: string
          message?: string
        }
        if (!res.ok || !body.token) throw new Error(body.message ?? body.error ?? `sign-in failed (${res.status})`)
        const me = await whoAmI(body.token)
        setPassword("")
        session.start({ token: body.token, me, expiresAt: body.expiresAt ?? null }, refresh)
      } else {
        const pasted = token.trim()
        const me = await whoAmI(pasted)
        setToken("")
        session.start({ token: pasted, me, expiresAt: null })
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      setError(err instanceof ApiError && err.status === 401 ? `The token was refused: ${message}` : message)
    } finally {
      setBusy(false)
    }
  }

  return (
    <main class="signin" id="main">
      <form class="card" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to Chimera</h1>
        {reason && (
          <p class="banner warn" role="status">
            {reason}
          </p>
        )}
        <div class="tabs" role="radiogroup" aria-label="Sign in with">
          <label>
            <input type="radio" name="mode" checked={mode === "password"} onChange={() => setMode("password")} /> User
            and password
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === "token"} onChange={() => setMode("token")} /> API token
          </label>
        </div>
        {mode === "password" ? (
          <>
            <label for="username">Username</label>
            <input
              id="username"
              autoComplete="username"
              required
              value={username}
              onInput={(e) => setUsername(e.currentTarget.value)}
            />
            <label for="password">Password</label>
            <input
              id="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </>
        ) : (
          <>
            <label for="token">API token</label>
            <input
              id="token"
              type="password"
              autoComplete="off"
              spellcheck={false}
              required
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
            <p class="hint">Kept in this tab's memory only; reloading the page signs you out.</p>
          </>
        )}
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  )
}
