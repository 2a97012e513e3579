import { describe, expect, test } from "bun:test"
import {
  createLogger,
  displayCredentialUrl,
  displayUrl,
  looksSecret,
  redact,
  redactText,
  setLogLevel,
  setLogSink,
} from "./log.ts"

const JWT =
  "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6MTcwNTMxNTIwMH0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
const ARGON = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
const TOKEN = "chm_api_0123456789abcdef0123456789abcdef0123456"

describe("redaction", () => {
  test("a URL's user:password is replaced for the log; the rest stays", () => {
    expect(displayUrl("https://ops:hunter2@cp.example:8443/x")).toBe("https://[redacted]@cp.example:8443/x")
    expect(displayUrl("http://127.0.0.1:8080")).toBe("http://127.0.0.1:8080")
    expect(displayUrl("http://cp/a@b")).toBe("http://cp/a@b")
    expect(displayUrl("http://u:p@ss@127.0.0.1:11434/v1")).toBe("http://[redacted]@127.0.0.1:11434/v1")
    expect(displayUrl("http://cp?next=a@b")).toBe("http://cp?next=a@b")
  })

  test("a database URL shows nothing of a password typed with an unencoded /, ? or #", () => {
    for (const password of ["s3cr@t/pw", "pa?ss@x", "pa#ss@x", "p@ss", "plain"])
      expect(displayCredentialUrl(`postgres://chimera:${password}@db.internal:5432/chimera`)).toBe(
        "postgres://[redacted]@db.internal:5432/chimera",
      )
    expect(displayCredentialUrl("postgres://chimera@/chimera?host=/run/postgresql")).toBe(
      "postgres://[redacted]@/chimera?host=/run/postgresql",
    )
    expect(displayCredentialUrl("postgres://db.internal/chimera")).toBe("postgres://db.internal/chimera")
  })

  test("secret-looking values are replaced wherever they stand in a string", () => {
    const text = `token=${TOKEN} jwt ${JWT} hash ${ARGON} header Authorization: Bearer abcdefghijklmnop0123`
    const out = redactText(text)
    for (const secret of [TOKEN, JWT, ARGON, "abcdefghijklmnop0123"]) expect(out).not.toContain(secret)
    expect(out).toContain("[redacted-jwt]")
    expect(looksSecret(text)).toBe(true)
    expect(looksSecret("send `Authorization: Bearer <token>`")).toBe(false)
    expect(redactText('{"a":"Bearer abcdefghijklmnopqrstu","b":1}')).toBe('{"a":"Bearer [redacted]","b":1}')
  })

  test("a URL's password is replaced wherever the URL stands in text (Nix and curl print the URLs they fetch)", () => {
    expect(redactText("unable to download 'https://ci:hunter2@cache.example.org/nix-cache-info': 401")).toBe(
      "unable to download 'https://ci:[redacted]@cache.example.org/nix-cache-info': 401",
    )
    expect(redactText("db postgres://app:p@ss@db:5432/x up")).toBe("db postgres://app:[redacted]@db:5432/x up")
    expect(redactText('{"url":"https://:tok3n@h/"}')).toBe('{"url":"https://:[redacted]@h/"}')
    for (const plain of ["http://[::1]:8080/x", "ssh://git@github.com/o/r", "http://cp/a:b@c", "// note: a@b"])
      expect(redactText(plain)).toBe(plain)
    expect(looksSecret("https://u:p@h")).toBe(true)
  })

  test("secrets assigned on a command line are replaced; field errors stay readable", () => {
    expect(redactText("PGPASSWORD=hunter2 psql -h db")).toBe("PGPASSWORD=[redacted] psql -h db")
    expect(redactText("mysql --password='s3 cret' x; GITHUB_TOKEN=\"abc def\" gh")).toBe(
      "mysql --password=[redacted] x; GITHUB_TOKEN=[redacted] gh",
    )
    expect(redactText("export AWS_SECRET_ACCESS_KEY=abc&& ls")).toBe("export AWS_SECRET_ACCESS_KEY=[redacted]&& ls")
    expect(redactText("body.password: expected at least 12 characters")).toBe(
      "body.password: expected at least 12 characters",
    )
    expect(redactText("FOO=bar ls")).toBe("FOO=bar ls")
    // The quote that ends one value may begin the next key: it is looked at, not taken.
    expect(redactText("GH_TOKEN='a b'API_KEY=c")).toBe("GH_TOKEN=[redacted]API_KEY=[redacted]")
  })

  test("fields named like secrets are replaced, at any depth, sudo passwords included", () => {
    expect(
      redact({ user: "ops", password: "x", nested: { sudoPassword: "y", apiKey: "z", list: [{ private_key: "k" }] } }),
    ).toEqual({
      user: "ops",
      password: "[redacted]",
      nested: { sudoPassword: "[redacted]", apiKey: "[redacted]", list: [{ private_key: "[redacted]" }] },
    })
  })

  test("the logger writes no secret, whatever field or message carries it", () => {
    const lines: string[] = []
    setLogSink((l) => lines.push(l))
    setLogLevel("DEBUG")
    try {
      createLogger("t").info(`login with ${JWT}`, { detail: `hash ${ARGON}`, body: { password: "hunter2hunter2" } })
    } finally {
      setLogSink((l) => process.stderr.write(`${l}\n`))
      setLogLevel("WARNING")
    }
    expect(lines).toHaveLength(1)
    for (const secret of [JWT, ARGON, "hunter2hunter2"]) expect(lines[0]).not.toContain(secret)
  })
})

test("a long run of secret words is no work for the redaction (it was quadratic: seconds a 256 KiB answer)", () => {
  // A node's report output may be 64 KiB, and an answer holds many: `tokentoken…` and `passwordpassword…`
  // once made the KEY=value pattern rescan the rest of the run at every word. A bound well above what
  // the old pattern took on this input is enough to tell the two apart: it took 6 s, now about 1 ms.
  // `eyJ-eyJ-…` (a JWT's start every four characters, no `.`) made the JWT pattern do the same: 0.7 s
  // for 64 KiB, one report of a node, before a JWT had to begin where its characters begin.
  for (const run of [
    "token".repeat(52_428),
    "password".repeat(32_768),
    `X_${"secret".repeat(43_690)}`,
    "eyJ-".repeat(65_536),
    `//${"a:".repeat(32_768)}`,
    "//a:b".repeat(13_107),
    `${"eyJa-".repeat(52_428)}.`,
  ]) {
    const t0 = performance.now()
    expect(redactText(run)).toBe(run)
    expect(looksSecret(run)).toBe(false)
    expect(performance.now() - t0).toBeLessThan(1000)
  }
  // A JWT after a separator is still one; after a letter, digit, `_` or `-` it never began there.
  const jwt = `eyJhbGciOiJIUzI1NiJ9.${"e".repeat(20)}.sig_nature-xx`
  for (const before of [" ", "=", '"', ":", "(", ""])
    expect(redactText(`${before}${jwt}`)).toBe(`${before}[redacted-jwt]`)
  // Names stay redacted as before, up to 64 letters on either side of the word.
  expect(redactText(`${"A".repeat(63)}_TOKEN_${"B".repeat(60)}=hunter2 psql`)).toBe(
    `${"A".repeat(63)}_TOKEN_${"B".repeat(60)}=[redacted] psql`,
  )
})
