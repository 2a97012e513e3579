// Accounts: local users (argon2id passwords) and named API tokens for automation, each holding one
// role. Removing a user, changing a password or changing a role ends that user's sessions at once;
// revoking a token refuses it on its next request. Views never carry a hash or a token, only the
// moment a token is made.
import { randomUUID } from "node:crypto"
import { z } from "zod"
import { conflict, invalid, notFound, unauthenticated } from "../errors.ts"
import type { Clock, UserPrincipal } from "../ports.ts"
import { hashToken, newToken } from "../tokens.ts"
import { ANONYMOUS_ACTOR } from "./audit.ts"
import { hashPassword, Password } from "./passwords.ts"
import type { ApiTokenRecord, AuthStorePort, UserRecord } from "./ports.ts"
import { Role } from "./roles.ts"
import { Username } from "./sessions.ts"

/** The bootstrap admin token is re-installed at every start, so revoking it would not stick. */
export const BOOTSTRAP_TOKEN_ID = "bootstrap-admin"

export const NewUser = z.object({ username: Username, password: Password, role: Role }).strict()
export type NewUser = z.infer<typeof NewUser>
export const TokenName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, "expected a name of 1-64 letters, digits, spaces, dots, dashes")
export const NewApiToken = z
  .object({
    name: TokenName,
    role: Role,
    ttlDays: z.number().int().min(1).max(3650).optional(),
  })
  .strict()
export type NewApiToken = z.infer<typeof NewApiToken>

export const userView = (u: UserRecord) => ({
  id: u.id,
  username: u.username,
  role: u.role,
  createdAt: u.createdAt,
  passwordChangedAt: u.passwordChangedAt,
})
export const tokenView = (t: ApiTokenRecord) => ({
  id: t.id,
  name: t.name,
  role: t.role,
  createdAt: t.createdAt,
  createdBy: t.createdBy,
  expiresAt: t.expiresAt,
  revokedAt: t.revokedAt,
})

/** How the bootstrap admin token is named, in the audit log's actor column among others. */
const BOOTSTRAP_TOKEN_NAME = "bootstrap admin"

/**
 * A name as a reader tells it from others: case aside, and its spaces as they look (a trailing one is
 * not seen, and a web page shows two as one), so `alice ` and `bootstrap  admin` are who they read as.
 */
const _seenAs = (name: string) => name.toLowerCase().replace(/\s+/g, " ").trim()

export function createAccounts({ store, clock }: { store: AuthStorePort; clock: Clock }) {
  const now = () => clock.now().toISOString()
  /**
   * A principal is shown by its name (the audit row's actor, a chat's approver): a token named as a
   * user or the bootstrap admin would have its actions read as theirs, so the names never meet.
   */
  const tokenNamed = async (name: string) =>
    (await store.listApiTokens()).find((t) => t.revokedAt === null && _seenAs(t.name) === _seenAs(name))
  const requireUser = async (username: string) => {
    const user = await store.userByName(username)
    if (!user) throw notFound(`user ${JSON.stringify(username)}`)
    return user
  }

  return {
    async addUser(req: NewUser) {
      if (req.username === ANONYMOUS_ACTOR)
        throw conflict(
          `${JSON.stringify(req.username)} names the callers with no credential in the audit log: this user's actions would read as theirs; pick another username`,
        )
      if (await tokenNamed(req.username))
        throw conflict(
          `an API token is named ${JSON.stringify(req.username)}: its actions would read as this user's; revoke it or pick another username`,
        )
      const at = now()
      const user: UserRecord = {
        id: randomUUID(),
        username: req.username,
        passwordHash: await hashPassword(req.password),
        role: req.role,
        createdAt: at,
        passwordChangedAt: at,
      }
      if (!(await store.createUser(user))) throw conflict(`user ${JSON.stringify(req.username)} already exists`)
      return userView(user)
    },
    listUsers: async () => (await store.listUsers()).map(userView),
    async removeUser(username: string) {
      const user = await requireUser(username)
      await store.deleteUser(user.id, now())
      const sessions = await store.revokeSessionsOf(user.id, now())
      const tokens = await store.revokeApiTokensOf(user.id, now())
      return { username, removed: true, sessionsRevoked: sessions, tokensRevoked: tokens }
    },
    async setPassword(username: string, password: string) {
      const user = await requireUser(username)
      await store.setPassword(user.id, await hashPassword(password), now())
      return { username, sessionsRevoked: await store.revokeSessionsOf(user.id, now()) }
    },
    /**
     * The authenticator already judges a session by the user's role in the store, so the new role holds
     * on the next request. The sessions end as well: each JWT names its role and permissions as claims
     * (`POST /api/auth/verify` reports them, and clients may read them), and none should stay valid while
     * naming a role its user no longer has. The next request with an old token is a 401 that says to log
     * in again. API tokens the user created with a role above the new one are revoked too: a demoted
     * admin keeps no admin token behind. Demoting the last admin user is allowed: the bootstrap admin
     * token always remains.
     */
    async setRole(username: string, role: Role) {
      const user = await requireUser(username)
      if (user.role === role) return userView(user)
      await store.setRole(user.id, role)
      await store.revokeSessionsOf(user.id, now())
      await store.revokeApiTokensOf(user.id, now(), Role.options.slice(Role.options.indexOf(role) + 1))
      return userView({ ...user, role })
    },
    /** `confirm` checks the current password as a login would (Sessions.confirm: under its backoff). */
    async changeOwnPassword(principal: UserPrincipal, next: string, confirm: (user: UserRecord) => Promise<boolean>) {
      const user = principal.userId === null ? null : await store.userById(principal.userId)
      if (!user) throw invalid("only a user logged in with a password can change it; API tokens have none")
      if (!(await confirm(user))) throw unauthenticated("the current password is wrong")
      await store.setPassword(user.id, await hashPassword(next), now())
      return { username: user.username, sessionsRevoked: await store.revokeSessionsOf(user.id, now()) }
    },

    async createToken(req: NewApiToken, by: UserPrincipal) {
      const name = _seenAs(req.name)
      const whom =
        name === BOOTSTRAP_TOKEN_NAME
          ? "the bootstrap admin"
          : name === ANONYMOUS_ACTOR
            ? "the callers with no credential"
            : (await store.userByName(name))
              ? "a user"
              : null
      if (whom !== null)
        throw conflict(
          `${JSON.stringify(req.name)} names ${whom}: the token's actions would read as theirs in the audit log; pick another name`,
        )
      const token = newToken("api")
      const createdAt = clock.now()
      const record: ApiTokenRecord = {
        id: randomUUID(),
        name: req.name,
        role: req.role,
        createdAt: createdAt.toISOString(),
        // Not the token that asked, but who answers for it: demoting or removing that user revokes this too.
        createdBy: by.owner,
        expiresAt:
          req.ttlDays === undefined ? null : new Date(createdAt.getTime() + req.ttlDays * 86_400_000).toISOString(),
        revokedAt: null,
      }
      await store.createApiToken({ ...record, tokenHash: hashToken(token) })
      return { ...tokenView(record), token }
    },
    listTokens: async () => (await store.listApiTokens()).map(tokenView),
    async revokeToken(id: string) {
      if (id === BOOTSTRAP_TOKEN_ID)
        throw conflict(
          "the bootstrap admin token is restored at every start; delete admin.token and restart to replace it",
        )
      if (!(await store.revokeApiToken(id, now())))
        throw notFound(
          `active API token with id ${JSON.stringify(id)} (tokens are revoked by id: see chimera tokens list)`,
        )
      return { id, revoked: true }
    },
  }
}

export type Accounts = ReturnType<typeof createAccounts>
