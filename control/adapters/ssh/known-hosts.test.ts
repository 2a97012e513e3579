import { describe, expect, test } from "bun:test"
import { createHmac, randomBytes } from "node:crypto"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { utils } from "ssh2"
import { algorithmsFor, fingerprint, keyType, knownHostsName, openKnownHosts } from "./known-hosts.ts"

const key = () => {
  const line = utils.generateKeyPairSync("ed25519").public
  const b64 = line.split(" ")[1] as string
  return { line: `ssh-ed25519 ${b64}`, blob: Buffer.from(b64, "base64") }
}
const hashed = (name: string) => {
  const salt = randomBytes(20)
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`
}

async function file(text: string) {
  const dir = await mkdtemp(join(tmpdir(), "chimera-kh-"))
  const path = join(dir, "known_hosts")
  await writeFile(path, text)
  return { path, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) }
}

const a = key()
const b = key()

describe("lookup names", () => {
  test("port 22 is the bare host, other ports [host]:port", () => {
    expect(knownHostsName("10.0.0.1", 22)).toBe("10.0.0.1")
    expect(knownHostsName("10.0.0.1", 2222)).toBe("[10.0.0.1]:2222")
    expect(knownHostsName("::1", 2222)).toBe("[::1]:2222")
  })

  test("key type and fingerprint come from the key blob", () => {
    expect(keyType(a.blob)).toBe("ssh-ed25519")
    expect(fingerprint(a.blob)).toMatch(/^ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}$/)
  })
})

describe("verify", () => {
  test("plain, comma-separated and bracketed entries match their host and port only", async () => {
    await using f = await file(`# comment\n\nweb,10.0.0.1 ${a.line}\n[10.0.0.1]:2222 ${b.line} note\n`)
    const kh = openKnownHosts(f.path)
    expect(await kh.verify("10.0.0.1", 22, a.blob)).toEqual({ kind: "known" })
    expect(await kh.verify("web", 22, a.blob)).toEqual({ kind: "known" })
    expect(await kh.verify("10.0.0.1", 2222, b.blob)).toEqual({ kind: "known" })
    // A plain entry does not cover another port (OpenSSH looks up [host]:port there).
    expect((await kh.verify("web", 2222, a.blob)).kind).toBe("unknown")
  })

  test("hashed entries (HashKnownHosts) match by HMAC-SHA1 of the name", async () => {
    await using f = await file(`${hashed("10.0.0.7")} ${a.line}\n${hashed("[10.0.0.7]:2200")} ${b.line}\n`)
    const kh = openKnownHosts(f.path)
    expect(await kh.verify("10.0.0.7", 22, a.blob)).toEqual({ kind: "known" })
    expect(await kh.verify("10.0.0.7", 2200, b.blob)).toEqual({ kind: "known" })
    expect((await kh.verify("10.0.0.8", 22, a.blob)).kind).toBe("unknown")
  })

  test("wildcards match and negations exclude", async () => {
    await using f = await file(`10.0.0.*,!10.0.0.9 ${a.line}\n`)
    const kh = openKnownHosts(f.path)
    expect((await kh.verify("10.0.0.5", 22, a.blob)).kind).toBe("known")
    expect((await kh.verify("10.0.0.9", 22, a.blob)).kind).toBe("unknown")
  })

  test("a different key for a recorded host is a mismatch that names both fingerprints", async () => {
    await using f = await file(`10.0.0.1 ${a.line}\n`)
    const verdict = await openKnownHosts(f.path).verify("10.0.0.1", 22, b.blob)
    expect(verdict).toEqual({
      kind: "mismatch",
      presented: fingerprint(b.blob),
      recorded: [`${fingerprint(a.blob)} (line 1)`],
      revoked: false,
    })
  })

  test("a @revoked key is refused even where another entry records it", async () => {
    await using f = await file(`@revoked * ${a.line}\n10.0.0.1 ${a.line}\n@cert-authority * ${b.line}\n`)
    const verdict = await openKnownHosts(f.path).verify("10.0.0.1", 22, a.blob)
    expect(verdict).toMatchObject({ kind: "mismatch", revoked: true })
  })

  test("a missing file knows no host", async () => {
    const kh = openKnownHosts(join(tmpdir(), "chimera-no-such-dir", "known_hosts"))
    expect((await kh.verify("10.0.0.1", 22, a.blob)).kind).toBe("unknown")
  })
})

describe("add", () => {
  test("appends an entry that the next lookup finds, [host]:port for other ports", async () => {
    await using f = await file(`10.0.0.1 ${a.line}\n`)
    const kh = openKnownHosts(f.path)
    await Promise.all([kh.add("10.0.0.2", 22, b.blob), kh.add("10.0.0.3", 2222, a.blob)])
    expect(await kh.verify("10.0.0.2", 22, b.blob)).toEqual({ kind: "known" })
    expect(await kh.verify("10.0.0.3", 2222, a.blob)).toEqual({ kind: "known" })
    const text = await readFile(f.path, "utf8")
    expect(text).toContain(`10.0.0.2 ${b.line}\n`)
    expect(text).toContain(`[10.0.0.3]:2222 ${a.line}\n`)
  })

  test("in a hashed file the new entry is hashed too, and OpenSSH's ssh-keygen finds it", async () => {
    await using f = await file(`${hashed("10.0.0.1")} ${a.line}\n`)
    const kh = openKnownHosts(f.path)
    await Promise.all([kh.add("Web-2.Example", 22, b.blob), kh.add("10.0.0.3", 2222, a.blob)])
    const text = await readFile(f.path, "utf8")
    expect(text).not.toContain("web-2.example")
    expect(text).not.toContain("10.0.0.3")
    expect(text.split("\n").filter((l) => l.startsWith("|1|"))).toHaveLength(3)
    expect(await kh.verify("web-2.example", 22, b.blob)).toEqual({ kind: "known" })
    const found = (name: string) =>
      Bun.spawnSync(["ssh-keygen", "-F", name, "-f", f.path]).stdout.toString().includes(" ssh-ed25519 ")
    expect([found("web-2.example"), found("[10.0.0.3]:2222"), found("10.0.0.9")]).toEqual([true, true, false])
  })
})

test("host key algorithms follow the recorded key types, RSA with its SHA-2 signatures", () => {
  const k = (type: string, revoked = false) => ({ type, blob: Buffer.alloc(0), line: 1, revoked })
  expect(algorithmsFor([k("ssh-ed25519"), k("ssh-rsa"), k("ecdsa-sha2-nistp256", true)])).toEqual([
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
  ])
  expect(algorithmsFor([])).toEqual([])
})
