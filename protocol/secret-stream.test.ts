// Redacting text that arrives in pieces gives what redacting it whole gives, wherever it is cut, and
// holds back only what could still be the start of a secret.
import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { redactText, SECRET_VALUES } from "./log.ts"
import { createSecretStream, UNFINISHED } from "./secret-stream.ts"

const TOKEN = "chm_api_0123456789abcdef0123456789abcdef0123456"
const JWT =
  "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6MTcwNTMxNTIwMH0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
const ARGON = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
const KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
/** One of each kind log.ts redacts, each with the part that must never go out. */
const SECRETS: [string, string][] = [
  [TOKEN, "0123456789abcdef"],
  [JWT, "eyJzdWIiOiJ1c2VyLTEy"],
  [ARGON, "aGFzaGhhc2hoYXNo"],
  ["Authorization: Bearer abcdefghijklmnop0123", "abcdefghijklmnop"],
  ["Authorization: basic\tdXNlcjpodW50ZXIyaHVudGVyMg==", "dXNlcjpodW50ZXIy"],
  [KEY, "b3BlbnNzaC1rZXktdjEA"],
  ["PGPASSWORD=hunter2hunter2 psql", "hunter2hunter2"],
  ["mysql --password='s3 cret value' -h db", "cret value"],
  ['export GITHUB_TOKEN="abc def ghi"', "abc def ghi"],
  ["AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"],
  ["fetching https://ci:cachepass99@cache.example.org/x", "cachepass99"],
]

function streamed(pieces: string[]): { out: string; parts: string[] } {
  const stream = createSecretStream()
  const parts = [...pieces.map((p) => stream.push(p)), stream.end()]
  return { out: parts.join(""), parts }
}

describe("secret stream", () => {
  test("each pattern of log.ts has its unfinished form", () => {
    expect(UNFINISHED).toHaveLength(SECRET_VALUES.length)
  })

  test("a secret cut in two anywhere, or into single characters, comes out as redacting it whole does", () => {
    for (const [secret, inner] of SECRETS) {
      const text = `before ${secret}\nafter\n`
      const whole = redactText(text)
      expect(whole).not.toContain(inner)
      for (let at = 0; at <= text.length; at++) expect(streamed([text.slice(0, at), text.slice(at)]).out).toBe(whole)
      expect(streamed([...text]).out).toBe(whole)
    }
  })

  test("text cut at random places, with secrets and near-secrets in it, comes out as redacting it whole does", () => {
    const fragment = fc.oneof(
      fc.constantFrom(...SECRETS.map(([s]) => ` ${s}\n`)),
      fc.constantFrom(
        " ",
        "\n",
        "\t",
        ";",
        "=",
        '"',
        "'",
        "chm_",
        "chm_api_",
        "ey",
        "eyJ",
        "$argon2",
        "Bearer ",
        "-----BEGIN ",
        "PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "pass",
        "token",
        "api_key=",
        "https://",
        "//",
        "ci:",
        "@",
        "/",
        "progress",
        "45%",
        "done",
      ),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/),
      fc.string({ maxLength: 12 }),
    )
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 8 }), (fragments, cuts) => {
        const text = fragments.join("")
        const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b)
        const pieces = [0, ...at].map((from, i) => text.slice(from, [...at, text.length][i]))
        expect(streamed(pieces).out).toBe(redactText(text))
      }),
      { numRuns: 2000 },
    )
  })

  test("ordinary output goes out as it comes; only a possible secret's start waits", () => {
    const stream = createSecretStream()
    expect(stream.push("line one\n")).toBe("line one\n")
    expect(stream.push("[####      ] 45%")).toBe("[####      ] 45%")
    expect(stream.push("\rbuilt 3 derivations; done")).toBe("\rbuilt 3 derivations; done")
    expect(stream.push("\nPrompt> ")).toBe("\nPrompt> ")
    // A token's start, then the rest of it: nothing of it goes out until it has ended.
    expect(stream.push("your token: chm_ap")).toBe("your token: ")
    expect(stream.push("i_0123456789abcdef")).toBe("")
    expect(stream.push("0123456789abcdef0123456 ok\n")).toBe("chm_[redacted] ok\n")
    // A key whose value has not ended waits with it; the end of the text lets it out, redacted.
    expect(stream.push("PGPASS")).toBe("")
    expect(stream.push("WORD=hun")).toBe("")
    expect(stream.end()).toBe("PGPASSWORD=[redacted]")
    expect(stream.end()).toBe("")
  })

  test("a private key is held from its first line to its last, and never longer than 64 KiB", () => {
    const stream = createSecretStream()
    const lines = KEY.split("\n")
    expect(stream.push(`key:\n${lines[0]}\n`)).toBe("key:\n")
    expect(stream.push(`${lines[1]}\n`)).toBe("")
    expect(stream.push(`${lines[2]}\nnext\n`)).toBe("[redacted-private-key]\nnext\n")
    const endless = createSecretStream()
    endless.push(`${lines[0]}\n`)
    expect(endless.push("A".repeat(70 * 1024))).not.toBe("")
  })

  test("a megabyte of output that keeps looking unfinished is handled in linear time", () => {
    const stream = createSecretStream()
    const started = performance.now()
    for (const unit of ["tokentoken ", "chm_a_-", "a=b;", "$argon2id$", "eyJ-"])
      for (let i = 0; i < 16; i++) stream.push(unit.repeat(65536 / unit.length))
    stream.end()
    expect(performance.now() - started).toBeLessThan(5000)
  })
})
