// Session tokens: JWTs signed RS256 with the control plane's own key. Verification pins the
// algorithm and the key before it trusts a byte of the payload: the header must say exactly RS256
// (so `alg: none` and HS256 signed with the public key as an HMAC secret, RFC 8725 §2.1 and §3.1, are
// refused), the signature must check against our public key, and the claims must parse and be
// current. Whether the session was revoked is asked of the store by the caller, on every request.
import { createHash, type KeyObject, sign, verify } from "node:crypto"
import { z } from "zod"
import { Role } from "./roles.ts"

export const ISSUER = "chimera"
/** Leeway for clocks of other replicas (seconds), on `iat` only; `exp` is strict. */
const IAT_SKEW = 60
const B64URL = /^[A-Za-z0-9_-]+$/

export const JwtClaims = z
  .object({
    iss: z.literal(ISSUER),
    sub: z.string().min(1).max(128),
    name: z.string().min(1).max(64),
    jti: z.string().min(16).max(64),
    iat: z.number().int().nonnegative(),
    exp: z.number().int().positive(),
    roles: z.array(Role).min(1).max(8),
    permissions: z.array(z.string().max(64)).max(64),
    sessionLimit: z.number().int().nonnegative(),
  })
  .strict()
export type JwtClaims = z.infer<typeof JwtClaims>

const Header = z.object({ alg: z.literal("RS256"), typ: z.literal("JWT").optional(), kid: z.string().max(64) }).strict()

export interface SigningKeys {
  privateKey: KeyObject
  publicKey: KeyObject
}

/**
 * The keys of every replica sharing a database: this process signs with its own, and verifies with
 * whichever key a token's `kid` names, if the keyring holds it (control/adapters/signing-keys.ts).
 */
export interface Keyring {
  /** The key this process signs new tokens with. */
  signer(): SigningKeys
  /** The public key of that id, or null when the keyring holds none (unknown, retired or removed). */
  publicKey(kid: string): Promise<KeyObject | null>
}

/** A short, stable id of the public key, so a rotated key's tokens are told apart at a glance. */
export function keyId(publicKey: KeyObject): string {
  const known = kids.get(publicKey)
  if (known) return known
  const der = publicKey.export({ type: "spki", format: "der" })
  const id = createHash("sha256").update(der).digest("base64url").slice(0, 16)
  kids.set(publicKey, id)
  return id
}
const kids = new WeakMap<KeyObject, string>()

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

export function signJwt(claims: JwtClaims, keys: SigningKeys): string {
  const head = `${b64({ alg: "RS256", typ: "JWT", kid: keyId(keys.publicKey) })}.${b64(claims)}`
  return `${head}.${sign("sha256", Buffer.from(head), keys.privateKey).toString("base64url")}`
}

export type JwtFailure = "malformed" | "algorithm" | "key" | "signature" | "claims" | "expired" | "not-yet-valid"

export type JwtResult = { ok: true; claims: JwtClaims } | { ok: false; reason: JwtFailure }

export const JWT_FAILURE_MESSAGES: Record<JwtFailure, string> = {
  malformed: "the session token is not a well-formed JWT",
  algorithm: "the session token is not signed RS256; no other algorithm is accepted",
  key: "the session token was signed with another key",
  signature: "the session token's signature does not verify",
  claims: "the session token's claims are not Chimera's",
  expired: "the session token has expired; log in again or refresh it before it expires",
  "not-yet-valid": "the session token was issued in the future",
}

function parseJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, "base64url").toString("utf8"))
  } catch {
    return undefined
  }
}

export function verifyJwt(token: string, publicKey: KeyObject, nowMs: number): JwtResult {
  const parts = token.split(".")
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) return { ok: false, reason: "malformed" }
  const [head = "", body = "", signature = ""] = parts
  const header = parseJson(head)
  if (header === undefined) return { ok: false, reason: "malformed" }
  const parsedHeader = Header.safeParse(header)
  if (!parsedHeader.success) {
    const alg = (header as { alg?: unknown } | null)?.alg
    return { ok: false, reason: alg === "RS256" ? "malformed" : "algorithm" }
  }
  if (parsedHeader.data.kid !== keyId(publicKey)) return { ok: false, reason: "key" }
  const valid = verify("sha256", Buffer.from(`${head}.${body}`), publicKey, Buffer.from(signature, "base64url"))
  if (!valid) return { ok: false, reason: "signature" }
  const claims = JwtClaims.safeParse(parseJson(body))
  if (!claims.success) return { ok: false, reason: "claims" }
  const now = Math.floor(nowMs / 1000)
  if (claims.data.exp <= now) return { ok: false, reason: "expired" }
  if (claims.data.iat > now + IAT_SKEW) return { ok: false, reason: "not-yet-valid" }
  return { ok: true, claims: claims.data }
}

const KID = /^[A-Za-z0-9_-]{16}$/

/** The `kid` a token's header names, when it is one of ours in shape; else null. */
function _kidOf(token: string): string | null {
  const head = token.split(".")[0] ?? ""
  if (!B64URL.test(head)) return null
  const kid = (parseJson(head) as { kid?: unknown } | null | undefined)?.kid
  return typeof kid === "string" && KID.test(kid) ? kid : null
}

/**
 * verifyJwt against the keyring key the token names. A token naming no key the keyring holds is
 * checked against this process's own key, so it fails with the reason verifyJwt gives (malformed,
 * algorithm, or another key) exactly as before there was a keyring.
 */
export async function verifyJwtWith(token: string, keyring: Keyring, nowMs: number): Promise<JwtResult> {
  const kid = _kidOf(token)
  const key = kid === null ? null : await keyring.publicKey(kid)
  return verifyJwt(token, key ?? keyring.signer().publicKey, nowMs)
}

/** Looks like a JWT (three base64url parts, a JSON header) rather than an opaque chm_ token. */
export const looksLikeJwt = (token: string) => token.startsWith("eyJ") && token.split(".").length === 3
