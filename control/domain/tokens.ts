// Bearer secrets: 32 random bytes, base64url, behind a prefix that says what they are
// (`chm_admin_`, `chm_api_`, `chm_join_`, `chm_node_`) so a leaked one is recognisable and the logger can redact
// it. Only their SHA-256 is stored; a database dump grants nothing.
import { randomBytes } from "node:crypto"

export type TokenKind = "admin" | "api" | "join" | "node"

export function newToken(kind: TokenKind): string {
  return `chm_${kind}_${randomBytes(32).toString("base64url")}`
}

/** SHA-256 of the token's UTF-8, in hex; Bun's one-shot hash, since every agent request takes one. */
export function hashToken(token: string): string {
  return Bun.SHA256.hash(token, "hex")
}

export function tokenKind(token: string): TokenKind | null {
  const m = /^chm_(admin|api|join|node)_[A-Za-z0-9_-]{43}$/.exec(token)
  return m ? (m[1] as TokenKind) : null
}
