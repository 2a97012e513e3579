// Bearer secrets: 32 random bytes, base64url, behind a prefix that says what they are (`chm_admin_`,
// `chm_api_`, `chm_join_`, `chm_node_`) so a leaked one is recognisable and the logger can redact it.
// Only their SHA-256 is stored. Shared by the control plane and the agent, which makes its own node
// credential at enrolment and sends only the hash (protocol/agent.ts, EnrollRequest).
import { randomBytes } from "node:crypto"

export type SecretKind = "admin" | "api" | "join" | "node"

export function newSecret(kind: SecretKind): string {
  return `chm_${kind}_${randomBytes(32).toString("base64url")}`
}

/** SHA-256 of the secret's UTF-8, in hex; Bun's one-shot hash, since every agent request takes one. */
export function secretHash(secret: string): string {
  return Bun.SHA256.hash(secret, "hex")
}
