// The signing keyring over a real database: replicas verify each other's tokens through the public
// keys alone, a key is rotated when due and its tokens keep verifying until the longest login has
// ended, a removed key is refused and replaced, and on one process a deleted key file still ends
// every session.
import { afterEach, describe, expect, test } from "bun:test"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { manualClock } from "../../tests/support/clock.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { keyId } from "../domain/auth/jwt.ts"
import { openKeyring, ROTATE_AFTER_MS, type SharedKeyring, SIGNING_KEY_FILE } from "./signing-keys.ts"

const SESSION_MAX_MS = 12 * 3600_000
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

async function setUp() {
  const store = await openTestStore("keyring")
  const clock = manualClock()
  const dirs: string[] = []
  const rings: SharedKeyring[] = []
  cleanups.push(async () => {
    for (const ring of rings) ring.close()
    await store.close()
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })
  const open = async (shared = true, dataDir?: string) => {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "chimera-keys-")))
    if (!dataDir) dirs.push(dir)
    const ring = await openKeyring({ db: store.db, dataDir: dir, clock, shared, sessionMaxMs: SESSION_MAX_MS })
    rings.push(ring)
    return { ring, dir }
  }
  return { store, clock, open }
}

const kidOf = (ring: SharedKeyring) => keyId(ring.signer().publicKey)

describe("signing keyring", () => {
  test("each replica signs with its own key and verifies the others' from the database", async () => {
    const { store, open } = await setUp()
    const { ring: a } = await open()
    const { ring: b, dir } = await open()
    expect(kidOf(a)).not.toBe(kidOf(b))
    expect(keyId((await a.publicKey(kidOf(b))) ?? a.signer().publicKey)).toBe(kidOf(b))
    expect(keyId((await b.publicKey(kidOf(a))) ?? b.signer().publicKey)).toBe(kidOf(a))
    expect(await a.publicKey("AAAAAAAAAAAAAAAA")).toBeNull()
    // Only public keys in the database; the private key stays in its data dir, 0600.
    const rows = (await store.db`SELECT public_key FROM signing_keys`) as { public_key: string }[]
    expect(rows).toHaveLength(2)
    for (const r of rows) expect(r.public_key).not.toContain("PRIVATE")
    expect((await stat(join(dir, SIGNING_KEY_FILE))).mode & 0o777).toBe(0o600)
  })

  test("a key past its age is replaced; its tokens verify until the longest login has ended, then not", async () => {
    const { clock, open } = await setUp()
    const { ring: a, dir } = await open()
    const { ring: b } = await open()
    const old = kidOf(a)
    clock.advance(ROTATE_AFTER_MS + 1000)
    await a.check()
    expect(kidOf(a)).not.toBe(old)
    expect((await stat(join(dir, SIGNING_KEY_FILE))).mode & 0o777).toBe(0o600)
    expect(await b.publicKey(old)).not.toBeNull()
    expect(await b.publicKey(kidOf(a))).not.toBeNull()
    clock.advance(SESSION_MAX_MS)
    await b.check()
    expect(await b.publicKey(old)).toBeNull()
    expect(await b.publicKey(kidOf(a))).not.toBeNull()
  })

  test("a key whose row was removed is refused everywhere, and its replica makes a new one", async () => {
    const { store, clock, open } = await setUp()
    const { ring: a } = await open()
    const { ring: b } = await open()
    const leaked = kidOf(a)
    expect(await b.publicKey(leaked)).not.toBeNull()
    await store.db`DELETE FROM signing_keys WHERE kid = ${leaked}`
    // What a replica looked up it trusts for a minute at most.
    clock.advance(61_000)
    expect(await b.publicKey(leaked)).toBeNull()
    await a.check()
    expect(kidOf(a)).not.toBe(leaked)
    expect(await b.publicKey(kidOf(a))).not.toBeNull()
  })

  test("one process (SQLite): a key made because the file was deleted replaces every other", async () => {
    const { open } = await setUp()
    const { ring: first, dir } = await open(false)
    const before = kidOf(first)
    first.close()
    await rm(join(dir, SIGNING_KEY_FILE))
    const { ring: again } = await open(false, dir)
    expect(kidOf(again)).not.toBe(before)
    expect(await again.publicKey(before)).toBeNull()
  })
})
