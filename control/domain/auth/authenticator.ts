// Who is calling: a bearer token resolved to a principal, on every request. Three kinds are accepted:
// a session JWT (RS256, checked against the store so a revoked one is refused at once and the user's
// current role applies), an API token (`chm_api_`, or the bootstrap `chm_admin_`), and a node
// credential (`chm_node_`). Join tokens are not principals; they only enrol (fleet.enroll).
import { unauthenticated } from "../errors.ts"
import type { Clock, NodePrincipal, Principal, UserPrincipal } from "../ports.ts"
import { hashToken, tokenKind } from "../tokens.ts"
import { JWT_FAILURE_MESSAGES, type Keyring, verifyJwtWith } from "./jwt.ts"
import type { AuthStorePort, NodeCredentialState } from "./ports.ts"

export interface AuthenticatorDeps {
  store: AuthStorePort
  keys: Keyring
  clock: Clock
  /** Node credentials older than this are asked to rotate (0: never). */
  nodeCredentialMaxAgeMs: number
}

export function createAuthenticator({ store, keys, clock, nodeCredentialMaxAgeMs }: AuthenticatorDeps) {
  async function session(token: string): Promise<UserPrincipal> {
    const result = await verifyJwtWith(token, keys, clock.now().getTime())
    if (!result.ok) throw unauthenticated(JWT_FAILURE_MESSAGES[result.reason])
    const found = await store.sessionWithUser(result.claims.jti)
    if (!found || found.user.id !== result.claims.sub) throw unauthenticated("the session is unknown")
    if (found.session.revokedAt !== null) throw unauthenticated("the session was revoked; log in again")
    return {
      kind: "user",
      subject: found.user.id,
      name: found.user.username,
      role: found.user.role,
      via: "session",
      sessionId: found.session.jti,
      userId: found.user.id,
      tokenId: null,
      owner: found.user.id,
    }
  }

  async function apiToken(token: string): Promise<UserPrincipal> {
    const record = await store.apiTokenByHash(hashToken(token))
    if (!record || record.revokedAt !== null) throw unauthenticated("the API token is unknown or revoked")
    if (record.expiresAt !== null && record.expiresAt <= clock.now().toISOString())
      throw unauthenticated("the API token has expired")
    return {
      kind: "user",
      subject: `token:${record.id}`,
      name: record.name,
      role: record.role,
      via: "api-token",
      sessionId: null,
      userId: null,
      tokenId: record.id,
      owner: record.createdBy ?? `token:${record.id}`,
    }
  }

  const nodePrincipal = (state: NodeCredentialState, nowMs: number): NodePrincipal => {
    const old = nodeCredentialMaxAgeMs > 0 && nowMs - Date.parse(state.issuedAt) >= nodeCredentialMaxAgeMs
    return { kind: "node", nodeId: state.nodeId, rotationDue: state.rotationRequested || old }
  }

  async function node(token: string): Promise<NodePrincipal> {
    const now = clock.now()
    const state = await store.nodeForCredential(hashToken(token), now.toISOString())
    if (!state) throw unauthenticated("the node credential is unknown or revoked")
    return nodePrincipal(state, now.getTime())
  }

  return {
    /**
     * Whether a join token is one this control plane issued (used or not: a lost enrolment answer is
     * retried with the used token). Enrolment itself decides the rest; this only keeps a flood of made-up
     * tokens from reaching it, so it is refused and counted like any other unauthenticated request.
     */
    async checkJoinToken(token: string): Promise<void> {
      if (tokenKind(token) !== "join") throw unauthenticated("enrolment needs a join token (chimera nodes join-token)")
      if (!(await store.joinTokenKnown(hashToken(token)))) throw unauthenticated("the join token is unknown")
    },
    /**
     * The node whose credential `token` is, when the store knows it without a read (authenticate then
     * gives the same principal); undefined for anything else, which authenticate decides. It spares
     * the agents' hot routes the promises of a lookup that never waits.
     */
    knownNode(token: string): NodePrincipal | undefined {
      if (!store.knownNodeCredential || tokenKind(token) !== "node") return undefined
      const state = store.knownNodeCredential(hashToken(token))
      return state ? nodePrincipal(state, clock.now().getTime()) : undefined
    },
    async authenticate(token: string): Promise<Principal> {
      if (token.startsWith("eyJ")) return session(token)
      const kind = tokenKind(token)
      if (kind === "admin" || kind === "api") return apiToken(token)
      if (kind === "node") return node(token)
      if (kind === "join") throw unauthenticated("a join token only enrols a node (POST /api/agent/enroll)")
      throw unauthenticated("the bearer token is not a Chimera token or session")
    },
  }
}

export type Authenticator = ReturnType<typeof createAuthenticator>
