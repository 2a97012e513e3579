// Roles and permissions. A principal holds one role; a role grants a fixed set of permissions; a route
// needs one permission (control/api/route-permissions.ts). Permissions, not roles, are what routes
// name, so a new role never means editing routes. `cli:use` opens and drives CLI sessions;
// `cli:full_access` also allows bash and AI tools with their own approval prompts off.
import { z } from "zod"

export const Permission = z.enum([
  "cli:use",
  "cli:full_access",
  /** Log in, refresh, verify, revoke and list one's own sessions, change one's own password. */
  "auth:session",
  /** Read nodes, events, deployments. */
  "fleet:read",
  /** Set desired closures, deploy, roll back, heal. */
  "fleet:deploy",
  /** Run low- and medium-risk commands on nodes. */
  "commands:run",
  /** Run high-risk commands (which also need a human approval). */
  "commands:run-high",
  /** Join tokens, node credential rotation and revocation. */
  "nodes:manage",
  "users:manage",
  "tokens:manage",
  "audit:read",
  /** Scrape GET /metrics: fleet counts by status, request rates; no node names, no paths. */
  "metrics:read",
  /** Send a test message through every configured notification channel (it reaches people). */
  "notifications:test",
])
export type Permission = z.infer<typeof Permission>

// Ordered from least to most: `metrics` is a scrape-only role for Prometheus's token.
export const Role = z.enum(["metrics", "viewer", "operator", "admin"])
export type Role = z.infer<typeof Role>

// A CLI session is a process on the control-plane host, which holds the admin token, the
// signing key and the SSH key to every node: whoever drives a shell or an AI tool there is admin, so
// `cli:use` and `cli:full_access` are admin's until sessions run sandboxed as a user of their own.
const METRICS: Permission[] = ["metrics:read"]
const VIEWER: Permission[] = [...METRICS, "auth:session", "fleet:read"]
const OPERATOR: Permission[] = [...VIEWER, "fleet:deploy", "commands:run"]

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  metrics: METRICS,
  viewer: VIEWER,
  operator: OPERATOR,
  admin: Permission.options,
}

export function permissionsOf(role: Role): Permission[] {
  return [...ROLE_PERMISSIONS[role]]
}

export function can(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission)
}

/** The least role that holds `permission`, for error messages that say what would be needed. */
export function leastRoleFor(permission: Permission): Role {
  return Role.options.find((r) => can(r, permission)) ?? "admin"
}
