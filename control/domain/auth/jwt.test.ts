import { describe, expect, test } from "bun:test"
import { createHmac, generateKeyPairSync, sign } from "node:crypto"
import { type JwtClaims, signJwt, verifyJwt } from "./jwt.ts"

const keys = generateKeyPairSync("rsa", { modulusLength: 2048 })
const other = generateKeyPairSync("rsa", { modulusLength: 2048 })
const NOW = Date.parse("2025-01-15T09:00:00Z")
const iat = NOW / 1000

const claims: JwtClaims = {
  iss: "chimera",
  sub: "user-123",
  name: "alice",
  jti: "0b3f2c1e-7f0d-4a35-9b5e-1c2d3e4f5a6b",
  iat,
  exp: iat + 3600,
  roles: ["operator"],
  permissions: ["cli:use", "cli:full_access"],
  sessionLimit: 10,
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url")
const good = signJwt(claims, keys)
const [head = "", body = ""] = good.split(".")

describe("RS256 session tokens", () => {
  test("a token we signed verifies and yields its claims", () => {
    expect(verifyJwt(good, keys.publicKey, NOW)).toEqual({ ok: true, claims })
    expect(JSON.parse(Buffer.from(head, "base64url").toString())).toMatchObject({ alg: "RS256", typ: "JWT" })
  })

  test("an expired token is refused, to the second", () => {
    expect(verifyJwt(good, keys.publicKey, (claims.exp - 1) * 1000).ok).toBe(true)
    expect(verifyJwt(good, keys.publicKey, claims.exp * 1000)).toEqual({ ok: false, reason: "expired" })
  })

  test("alg none is refused, with or without a signature", () => {
    const none = `${b64({ alg: "none", typ: "JWT" })}.${body}`
    expect(verifyJwt(`${none}.`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "malformed" })
    expect(verifyJwt(`${none}.AAAA`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "algorithm" })
    const noneKid = `${b64({ alg: "none", typ: "JWT", kid: JSON.parse(Buffer.from(head, "base64url").toString()).kid })}.${body}`
    expect(verifyJwt(`${noneKid}.AAAA`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "algorithm" })
  })

  test("HS256 signed with our public key as the HMAC secret is refused (key confusion)", () => {
    const kid = JSON.parse(Buffer.from(head, "base64url").toString()).kid
    const hsHead = b64({ alg: "HS256", typ: "JWT", kid })
    const pem = keys.publicKey.export({ type: "spki", format: "pem" })
    const mac = createHmac("sha256", pem).update(`${hsHead}.${body}`).digest("base64url")
    expect(verifyJwt(`${hsHead}.${body}.${mac}`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "algorithm" })
    // Even with the header claiming RS256, an HMAC is not an RSA signature.
    const macAsRs = createHmac("sha256", pem).update(`${head}.${body}`).digest("base64url")
    expect(verifyJwt(`${head}.${body}.${macAsRs}`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "signature" })
  })

  test("a token signed with another key is refused, whatever kid it claims", () => {
    expect(verifyJwt(signJwt(claims, other), keys.publicKey, NOW)).toEqual({ ok: false, reason: "key" })
    const forged = sign("sha256", Buffer.from(`${head}.${body}`), other.privateKey).toString("base64url")
    expect(verifyJwt(`${head}.${body}.${forged}`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "signature" })
  })

  test("a payload changed after signing is refused (role escalation)", () => {
    const escalated = b64({ ...claims, roles: ["admin"] })
    const sig = good.split(".")[2]
    expect(verifyJwt(`${head}.${escalated}.${sig}`, keys.publicKey, NOW)).toEqual({ ok: false, reason: "signature" })
  })

  test("garbage is malformed, never an exception", () => {
    for (const t of ["", ".", "..", "a.b.c", "eyJ.eyJ.", `${head}.!!.x`, "x".repeat(5000), `${head}.${body}`])
      expect(verifyJwt(t, keys.publicKey, NOW).ok).toBe(false)
  })

  test("claims that are not Chimera's are refused even when signed by our key", () => {
    const foreign = { ...claims, iss: "someone-else" } as unknown as JwtClaims
    expect(verifyJwt(signJwt(foreign, keys), keys.publicKey, NOW)).toEqual({ ok: false, reason: "claims" })
  })
})
