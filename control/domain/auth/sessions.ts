// Login sessions: a username and password traded for a one-hour RS256 JWT, refreshed
// before it expires, verified, revoked, listed. Each issued JWT is a row keyed by its jti, which is
// what makes revocation immediate: the authenticator reads that row on every request. Refreshing
// cannot keep a login alive for ever: every session of a chain ends at the absolute lifetime counted
// from its login (`auth.session_max_seconds`), after which only a new login (a password) continues.
import { randomUUID } from "node:crypto"
import { z } from "zod"
import { createLogger } from "../../../protocol/log.ts"
import { forbidden, invalid, notFound, unauthenticated } from "../errors.ts"
import type { Clock, UserPrincipal } from "../ports.ts"
import { ISSUER, JWT_FAILURE_MESSAGES, type JwtClaims, type Keyring, signJwt, verifyJwtWith } from "./jwt.ts"
import { createLoginBackoff, type LoginBackoff } from "./login-backoff.ts"
import type { CheckCaller } from "./password-queue.ts"
import { type Passwords, passwords as processPasswords } from "./passwords.ts"
import type { AuthStorePort, SessionRecord, UserRecord } from "./ports.ts"
import { permissionsOf } from "./roles.ts"

const log = createLogger("auth")

export const Username = z
  .string()
  .regex(
    /^[a-z][a-z0-9._-]{0,31}$/,
    "expected a username of 1-32 lower-case letters, digits, dots, dashes, underscores",
  )
/**
 * A typed username as it may be shown in a log or the audit log: itself when it is shaped like one,
 * else a marker. A name that cannot be a username is often a password typed into the wrong field.
 */
export function shownUsername(name: string): string {
  return Username.safeParse(name).success ? name : "[not a username]"
}

export const LoginRequest = z.object({ username: z.string().max(64), password: z.string().max(1024) }).strict()
export type LoginRequest = z.infer<typeof LoginRequest>

export interface SessionsDeps {
  store: AuthStorePort
  keys: Keyring
  clock: Clock
  ttlSeconds: number
  /** How long a login lasts however often it is refreshed. */
  maxSeconds: number
  /** Password checks (default: the process's one queue). */
  passwords?: Passwords
  /** Failed logins per username and source (default: the rules in login-backoff.ts). */
  backoff?: LoginBackoff
  /** The `sessionLimit` claim: how many CLI sessions the user may hold. */
  sessionLimit: number
}

export interface IssuedSession {
  token: string
  tokenType: "Bearer"
  expiresAt: string
  claims: JwtClaims
}

export const sessionView = (s: SessionRecord, current: string | null) => ({
  jti: s.jti,
  issuedAt: s.issuedAt,
  expiresAt: s.expiresAt,
  source: s.source,
  current: s.jti === current,
})

export function createSessions(deps: SessionsDeps) {
  const { store, keys, clock, ttlSeconds, maxSeconds, sessionLimit } = deps
  const passwords = deps.passwords ?? processPasswords
  const backoff = deps.backoff ?? createLoginBackoff(clock)
  async function issue(user: UserRecord, meta: { source: string | null; userAgent: string | null }, startedAt?: Date) {
    const now = clock.now()
    const iat = Math.floor(now.getTime() / 1000)
    const started = startedAt ?? now
    // The last token of a chain ends with it, not an hour past it.
    const endOfLogin = Math.floor(started.getTime() / 1000) + maxSeconds
    const claims: JwtClaims = {
      iss: ISSUER,
      sub: user.id,
      name: user.username,
      jti: randomUUID(),
      iat,
      exp: Math.min(iat + ttlSeconds, endOfLogin),
      roles: [user.role],
      permissions: permissionsOf(user.role),
      sessionLimit,
    }
    const expiresAt = new Date(claims.exp * 1000).toISOString()
    await store.createSession({
      jti: claims.jti,
      userId: user.id,
      issuedAt: now.toISOString(),
      expiresAt,
      revokedAt: null,
      source: meta.source,
      userAgent: meta.userAgent?.slice(0, 200) ?? null,
      startedAt: started.toISOString(),
    })
    return { token: signJwt(claims, keys.signer()), tokenType: "Bearer", expiresAt, claims } satisfies IssuedSession
  }

  const sessionOf = (principal: UserPrincipal) => {
    if (principal.sessionId === null)
      throw invalid("this needs a session token from POST /api/auth/login; API tokens have no session")
    return principal.sessionId
  }

  /**
   * One password check under the backoff of `shown` (a username as shown): reserved, then counted a
   * failure or a success, or abandoned if `check` throws. `caller()` is the check's place in the
   * password queue, read when the check asks for it.
   */
  async function underBackoff(
    shown: string,
    source: string | null,
    check: (caller: () => CheckCaller) => Promise<boolean>,
  ): Promise<boolean> {
    await backoff.begin(shown, source)
    let ok: boolean
    try {
      ok = await check(() => ({ source, standing: backoff.standing(source) }))
    } catch (error) {
      backoff.abandoned(shown)
      throw error
    }
    if (ok) await backoff.succeeded(shown, source)
    else await backoff.failed(shown, source)
    return ok
  }

  return {
    /** `verified` runs once the password is right, before the session exists (its audit row). */
    async login(
      req: LoginRequest,
      meta: { source: string | null; userAgent: string | null },
      verified: () => Promise<void> = async () => {},
    ) {
      const shown = shownUsername(req.username)
      let user = null as UserRecord | null
      const ok = await underBackoff(shown, meta.source, async (caller) => {
        user = Username.safeParse(req.username).success ? await store.userByName(req.username) : null
        return (await passwords.verify(req.password, user?.passwordHash ?? null, caller())) && user !== null
      })
      if (!ok || !user) {
        log.info("login failed", { username: shown, source: meta.source })
        throw unauthenticated("unknown username or wrong password")
      }
      await verified()
      return issue(user, meta)
    },

    /**
     * Whether `password` is `user`'s, checked as a login checks it: under the username's backoff, so
     * that a stolen session cannot guess it faster than a login could (the password change asks it).
     */
    confirm: (user: UserRecord, password: string, source: string | null): Promise<boolean> =>
      underBackoff(shownUsername(user.username), source, (caller) =>
        passwords.verify(password, user.passwordHash, caller()),
      ),

    /** A new token for the same session owner; the old one is revoked in the same step. */
    async refresh(principal: UserPrincipal, meta: { source: string | null; userAgent: string | null }) {
      const jti = sessionOf(principal)
      const found = await store.sessionWithUser(jti)
      if (!found || found.user.id !== principal.userId) throw unauthenticated("the session's user no longer exists")
      const started = new Date(found.session.startedAt)
      if (clock.now().getTime() >= started.getTime() + maxSeconds * 1000) {
        await store.revokeSession(jti, clock.now().toISOString())
        throw unauthenticated(
          `this login began at ${found.session.startedAt} and has reached the absolute session lifetime of ${maxSeconds} s (auth.session_max_seconds); log in again`,
        )
      }
      const next = await issue(found.user, meta, started)
      // Two refreshes of one token race to revoke it; only the one that did gets to keep its new session,
      // so a stolen token cannot be forked into a second line of sessions beside the owner's.
      if (!(await store.revokeSession(jti, clock.now().toISOString(), next.claims.jti))) {
        await store.revokeSession(next.claims.jti, clock.now().toISOString())
        throw unauthenticated("the session was already refreshed or revoked; log in again")
      }
      return next
    },

    /** Checks a token without acting on it: signature, expiry, and whether it was revoked. */
    async verify(token: string) {
      const result = await verifyJwtWith(token, keys, clock.now().getTime())
      if (!result.ok) return { valid: false, reason: JWT_FAILURE_MESSAGES[result.reason] } as const
      const found = await store.sessionWithUser(result.claims.jti)
      if (!found || found.session.revokedAt !== null)
        return { valid: false, reason: "the session was revoked or its user removed" } as const
      const { jti, sub, name, iat, exp, roles, permissions, sessionLimit } = result.claims
      return { valid: true, claims: { jti, sub, name, iat, exp, roles, permissions, sessionLimit } } as const
    },

    /** Revokes the caller's own session, or (for an admin) `jti` of anyone's. */
    async revoke(principal: UserPrincipal, jti: string | undefined) {
      const target = jti ?? sessionOf(principal)
      const found = await store.sessionWithUser(target)
      if (!found) throw notFound(`session ${JSON.stringify(target)}`)
      if (found.user.id !== principal.userId && principal.role !== "admin")
        throw forbidden("only an admin may revoke another user's session")
      const revoked = await store.revokeSession(target, clock.now().toISOString())
      return { jti: target, revoked }
    },

    async list(principal: UserPrincipal) {
      if (principal.userId === null) return { sessions: [] }
      const sessions = await store.activeSessions(principal.userId, clock.now().toISOString())
      return { sessions: sessions.map((s) => sessionView(s, principal.sessionId)) }
    },
  }
}

export type Sessions = ReturnType<typeof createSessions>
