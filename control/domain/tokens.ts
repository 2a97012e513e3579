// Bearer secrets: 32 random bytes, base64url, behind a prefix that says what they are
// (`chm_admin_`, `chm_api_`, `chm_join_`, `chm_node_`) so a leaked one is recognisable and the logger can redact
// it. Only their SHA-256 is stored; a database dump grants nothing.
import { newSecret, secretHash } from "../../protocol/secrets.ts"

export type TokenKind = "admin" | "api" | "join" | "node"

export const newToken: (kind: TokenKind) => string = newSecret

/** SHA-256 of the token's UTF-8, in hex (protocol/secrets.ts). */
export const hashToken: (token: string) => string = secretHash

export function tokenKind(token: string): TokenKind | null {
  const m = /^chm_(admin|api|join|node)_[A-Za-z0-9_-]{43}$/.exec(token)
  return m ? (m[1] as TokenKind) : null
}
