// Host key verification against an OpenSSH known_hosts file (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT").
// A host on port 22 is looked up as `host`, on any other port as `[host]:port`, as OpenSSH does. Entries
// may list several comma-separated patterns with `*`/`?` wildcards and `!` negations, or be hashed
// (`|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, HashKnownHosts). `@revoked` keys are refused;
// `@cert-authority` lines are skipped (Chimera does not do host certificates). A host whose recorded keys
// are all of other types than the one presented counts as a mismatch, not as new: the connection asks
// for a recorded type first (`hostKeyAlgorithms`), so a server that offers another has changed.
import { createHash, createHmac, randomBytes } from "node:crypto"
import { appendFile, mkdir, readFile, stat } from "node:fs/promises"
import { isIPv6 } from "node:net"
import { dirname } from "node:path"

export interface KnownKey {
  type: string
  blob: Buffer
  line: number
  revoked: boolean
}

export type HostKeyVerdict =
  | { kind: "known" }
  | { kind: "unknown"; presented: string }
  | { kind: "mismatch"; presented: string; recorded: string[]; revoked: boolean }

interface Entry extends KnownKey {
  patterns: string[]
}

/** `host` on port 22, `[host]:port` elsewhere: the name known_hosts files record. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

/** The key type inside an SSH wire-format public key blob (its first string). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return "unknown"
  const n = blob.readUInt32BE(0)
  return blob.subarray(4, 4 + n).toString("latin1")
}

/** `ssh-ed25519 SHA256:…`, as ssh-keygen -l prints fingerprints. */
export function fingerprint(blob: Buffer): string {
  return `${keyType(blob)} SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`
}

function _glob(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".")
  return new RegExp(`^${re}$`, "i").test(name)
}

function _matches(patterns: string[], name: string): boolean {
  const hashed = patterns[0]?.startsWith("|1|")
  if (hashed) {
    const [, , salt, hash] = (patterns[0] as string).split("|")
    if (!salt || !hash) return false
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64")
    return mac === hash
  }
  let positive = false
  for (const p of patterns) {
    if (p.startsWith("!")) {
      if (_glob(p.slice(1), name)) return false
    } else if (_glob(p, name)) positive = true
  }
  return positive
}

/** `name` as HashKnownHosts writes it: `|1|` base64(salt) `|` base64(HMAC-SHA1(salt, name)), a fresh salt each. */
function _hashed(name: string): string {
  const salt = randomBytes(20)
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`
}

export function parseKnownHosts(text: string): Entry[] {
  const entries: Entry[] = []
  text.split("\n").forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/)
    if (fields[0] === "" || fields[0]?.startsWith("#")) return
    let marker = ""
    if (fields[0]?.startsWith("@")) marker = fields.shift() as string
    if (marker === "@cert-authority" || fields.length < 3) return
    const [hosts, type, b64] = fields as [string, string, string]
    entries.push({
      patterns: hosts.split(","),
      type,
      blob: Buffer.from(b64, "base64"),
      line: i + 1,
      revoked: marker === "@revoked",
    })
  })
  return entries
}

export interface KnownHosts {
  readonly path: string
  /** The keys recorded for host:port (revoked ones included, flagged). */
  lookup(host: string, port: number): Promise<KnownKey[]>
  verify(host: string, port: number, presented: Buffer): Promise<HostKeyVerdict>
  /**
   * Records a newly trusted key (`--trust-new-hosts`); appends, so concurrent writers cannot clobber.
   * In a file whose entries are hashed (HashKnownHosts, Debian's default) the name is hashed too, so
   * the file does not start listing in plain text the hosts it was hiding.
   */
  add(host: string, port: number, key: Buffer): Promise<void>
}

export function openKnownHosts(path: string): KnownHosts {
  let cache: { stamp: string; entries: Entry[] } | null = null
  let writes: Promise<void> = Promise.resolve()
  const entries = async (): Promise<Entry[]> => {
    const s = await stat(path).catch(() => null)
    const stamp = s ? `${s.mtimeMs}:${s.size}` : "absent"
    if (cache?.stamp !== stamp) {
      const text = s ? await readFile(path, "utf8") : ""
      cache = { stamp, entries: parseKnownHosts(text) }
    }
    return cache.entries
  }
  const lookup = async (host: string, port: number) => {
    const name = knownHostsName(host, port)
    return (await entries()).filter((e) => _matches(e.patterns, name))
  }
  return {
    path,
    lookup,
    async verify(host, port, presented) {
      const recorded = await lookup(host, port)
      const revoked = recorded.some((k) => k.revoked && k.blob.equals(presented))
      const good = recorded.filter((k) => !k.revoked)
      if (!revoked && good.some((k) => k.blob.equals(presented))) return { kind: "known" }
      if (!revoked && good.length === 0) return { kind: "unknown", presented: fingerprint(presented) }
      return {
        kind: "mismatch",
        presented: fingerprint(presented),
        recorded: good.map((k) => `${fingerprint(k.blob)} (line ${k.line})`),
        revoked,
      }
    },
    add(host, port, key) {
      const name = knownHostsName(isIPv6(host) ? host : host.toLowerCase(), port)
      writes = writes
        .catch(() => {})
        .then(async () => {
          const hashing = (await entries()).some((e) => e.patterns[0]?.startsWith("|1|"))
          const line = `${hashing ? _hashed(name) : name} ${keyType(key)} ${key.toString("base64")}\n`
          await mkdir(dirname(path), { recursive: true, mode: 0o700 })
          await appendFile(path, line, { mode: 0o600 })
        })
      return writes
    },
  }
}

/** ssh2's host key algorithm names for the key types a host has on record (preferred, as OpenSSH does). */
export function algorithmsFor(keys: KnownKey[]): string[] {
  const out = new Set<string>()
  for (const k of keys) {
    if (k.revoked) continue
    if (k.type === "ssh-rsa") for (const a of ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]) out.add(a)
    else if (/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-dss)$/.test(k.type)) out.add(k.type)
  }
  return [...out]
}
