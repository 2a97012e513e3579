// The trust layer's wiring, called once by the composition root (server.ts): the signing keyring the
// composition root opened (or this data dir's key alone), the auth store on the shared database handle, and the use cases the API's guard and
// routes need. Settings come from the `auth` and `rate_limits` configuration sections.
import type { SQL } from "bun"
import { localKeyring } from "./adapters/signing-keys.ts"
import { createAuthStore } from "./adapters/store/auth-store.ts"
import { sharedLoginFailures } from "./adapters/store/login-failures.ts"
import type { Dialect } from "./adapters/store/migrations.ts"
import type { TrustDeps } from "./api/app.ts"
import { createRefusals } from "./api/refusals.ts"
import type { ChimeraConfig } from "./config-schema.ts"
import { createAccounts } from "./domain/auth/accounts.ts"
import { createAudit } from "./domain/auth/audit.ts"
import { createAuthenticator } from "./domain/auth/authenticator.ts"
import type { Keyring } from "./domain/auth/jwt.ts"
import { createLoginBackoff, DEFAULT_BACKOFF } from "./domain/auth/login-backoff.ts"
import { createNodeIdentity } from "./domain/auth/node-identity.ts"
import { type CheckQueueLimits, createCheckQueue } from "./domain/auth/password-queue.ts"
import { createPasswords } from "./domain/auth/passwords.ts"
import { createRateLimiter, DEFAULT_LIMITS, type RateLimits } from "./domain/auth/rate-limiter.ts"
import { createSessions } from "./domain/auth/sessions.ts"
import type { Clock, EventBusPort, StorePort } from "./domain/ports.ts"

export interface TrustSettings {
  jwtTtlSeconds: number
  /** The absolute lifetime of a login, refreshes included. */
  sessionMaxSeconds: number
  sessionLimit: number
  /** 0: node credentials rotate only on request. */
  nodeCredentialRotationDays: number
  rateLimits: Partial<RateLimits>
  /** The password-check queue's bounds; unset: the process's one queue (password-queue.ts's defaults). */
  passwordChecks?: CheckQueueLimits
}

export const DEFAULT_TRUST: TrustSettings = {
  jwtTtlSeconds: 3600,
  sessionMaxSeconds: 43_200,
  sessionLimit: DEFAULT_LIMITS.sessions.limit,
  nodeCredentialRotationDays: 30,
  rateLimits: {},
}

/** The trust settings a configuration asks for. */
export function trustSettings(config: Pick<ChimeraConfig, "auth" | "rate_limits">): TrustSettings {
  const { window_seconds, ...limits } = config.rate_limits
  const windowMs = window_seconds * 1000
  return {
    jwtTtlSeconds: config.auth.jwt_ttl_seconds,
    sessionMaxSeconds: config.auth.session_max_seconds,
    sessionLimit: limits.sessions,
    nodeCredentialRotationDays: config.auth.node_credential_rotation_days,
    rateLimits: Object.fromEntries(
      Object.entries(limits).map(([name, limit]) => [name, { limit, windowMs }]),
    ) as Partial<RateLimits>,
  }
}

export interface TrustInput {
  db: SQL
  dialect: Dialect
  dataDir: string
  store: StorePort
  bus: EventBusPort
  clock: Clock
  settings: TrustSettings
  /** The signing keyring (control/adapters/signing-keys.ts); default: this data dir's key alone. */
  keys?: Keyring
  /**
   * Told when a node's credential stops: revoked, or retired by the first use of a rotated one; its
   * agent's open long polls end then (Fleet.credentialRetired).
   */
  credentialRetired?: (nodeId: string) => void
  /** Told of commands a node's removal closed unanswered (NodeIdentityDeps.commandsClosed). */
  commandsClosed?: (ids: string[]) => void
}

export function createTrust({ db, dialect, dataDir, store, bus, clock, settings, ...input }: TrustInput): TrustDeps {
  const keys = input.keys ?? localKeyring(dataDir)
  const authStore = createAuthStore(db, dialect, { credentialRetired: input.credentialRetired })
  const audit = createAudit({ store: authStore, clock })
  return {
    authenticator: createAuthenticator({
      store: authStore,
      keys,
      clock,
      nodeCredentialMaxAgeMs: settings.nodeCredentialRotationDays * 86_400_000,
    }),
    limiter: createRateLimiter({ ...DEFAULT_LIMITS, ...settings.rateLimits }, clock),
    sessions: createSessions({
      store: authStore,
      keys,
      clock,
      ttlSeconds: settings.jwtTtlSeconds,
      maxSeconds: settings.sessionMaxSeconds,
      passwords: settings.passwordChecks && createPasswords(createCheckQueue(settings.passwordChecks)),
      sessionLimit: settings.sessionLimit,
      // Replicas share each username's failed logins; one process keeps them in memory.
      backoff: createLoginBackoff(clock, DEFAULT_BACKOFF, dialect === "postgres" ? sharedLoginFailures(db) : null),
    }),
    accounts: createAccounts({ store: authStore, clock }),
    identity: createNodeIdentity({
      authStore,
      store,
      bus,
      clock,
      credentialRetired: input.credentialRetired,
      commandsClosed: input.commandsClosed,
    }),
    audit,
    refusals: createRefusals({ audit, clock }),
  }
}
