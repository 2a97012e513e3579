// The control plane's JWT signing keys. Each process signs with its own RSA 2048 key pair, made on
// first start and kept in its data directory as PKCS#8 PEM (jwt-signing-key.pem, mode 0600,
// directory 0700): private keys never leave the host that made them, so a dump of the database hands
// out no signing key. What the database holds is the keyring: every replica's *public* key by key id
// (table signing_keys), so a session signed by one replica verifies on all of them, with no file to
// copy. Keys rotate: a key older than ROTATE_AFTER_MS is replaced (its file rewritten, the new public
// key added), and the old public key stays in the keyring until every token it signed has expired
// (the longest login, `auth.session_max_seconds`, after its rotation), then it is removed.
//
// Removing a key's row ends every session it signed, on every replica within CHECK_MS; the replica
// that held it makes a new one at its next check. On SQLite there is one process: a key made because
// the file was deleted replaces every other, so deleting the file and restarting still ends every
// session (the emergency "log everyone out").
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto"
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { SQL } from "bun"
import { createLogger } from "../../protocol/log.ts"
import { type Keyring, keyId, type SigningKeys } from "../domain/auth/jwt.ts"
import type { Clock } from "../domain/ports.ts"

const log = createLogger("signing-keys")

export const SIGNING_KEY_FILE = "jwt-signing-key.pem"
/** A replica's key is replaced after this long. */
export const ROTATE_AFTER_MS = 30 * 86_400_000
/** How often a replica checks its own key (rotation, removal) and how long a looked-up key is trusted. */
const CHECK_MS = 60_000

function _newPem(): string {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return privateKey.export({ type: "pkcs8", format: "pem" }).toString()
}

function _keysOf(pem: string, path: string): SigningKeys {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch {
    throw new Error(`${path} does not hold a PEM private key; delete it to create a new one (this ends every session)`)
  }
  if (privateKey.asymmetricKeyType !== "rsa") throw new Error(`${path} holds a non-RSA key; RS256 needs RSA`)
  return { privateKey, publicKey: createPublicKey(privateKey) }
}

export function loadOrCreateSigningKeys(dataDir: string): SigningKeys & { path: string; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, SIGNING_KEY_FILE)
  let created = false
  let pem: string
  try {
    pem = readFileSync(path, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    pem = _newPem()
    // `wx`: two processes starting on one data dir must not overwrite each other's key.
    try {
      writeFileSync(path, pem, { mode: 0o600, flag: "wx" })
      created = true
    } catch (raced) {
      if ((raced as NodeJS.ErrnoException).code !== "EEXIST") throw raced
      pem = readFileSync(path, "utf8")
    }
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600)
  return { ..._keysOf(pem, path), path, created }
}

/** This data dir's key alone, for a process with no database keyring (unit tests of the API). */
export function localKeyring(dataDir: string): Keyring {
  const keys = loadOrCreateSigningKeys(dataDir)
  const kid = keyId(keys.publicKey)
  return { signer: () => keys, publicKey: async (id) => (id === kid ? keys.publicKey : null) }
}

export interface SharedKeyring extends Keyring {
  path: string
  created: boolean
  /** The periodic check, now: rotation when due, a new key if this one's row was removed, pruning. */
  check(): Promise<void>
  close(): void
}

export interface KeyringInput {
  db: SQL
  dataDir: string
  clock: Clock
  /** Several processes share the database (PostgreSQL): other keys are other replicas', kept. */
  shared: boolean
  /** The longest a login lasts, refreshes included: how long a rotated key keeps verifying. */
  sessionMaxMs: number
}

/** This process's key, published in the database's keyring, and the keyring's lookups. */
export async function openKeyring({ db, dataDir, clock, shared, sessionMaxMs }: KeyringInput): Promise<SharedKeyring> {
  const local = loadOrCreateSigningKeys(dataDir)
  let own: SigningKeys = local
  const cache = new Map<string, { key: KeyObject; atMs: number }>()
  const publish = async (keys: SigningKeys) => {
    const pem = keys.publicKey.export({ type: "spki", format: "pem" }).toString()
    await db`INSERT INTO signing_keys (kid, public_key, created_at) VALUES (${keyId(keys.publicKey)}, ${pem}, ${clock.now().toISOString()})
             ON CONFLICT (kid) DO NOTHING`
  }
  const replace = async (why: string) => {
    const pem = _newPem()
    const next = _keysOf(pem, local.path)
    await publish(next)
    // Written whole under another name and renamed: a crash never leaves half a key at the path.
    const tmp = `${local.path}.${process.pid}.new`
    writeFileSync(tmp, pem, { mode: 0o600 })
    renameSync(tmp, local.path)
    own = next
    log.info("signing key replaced", { why, kid: keyId(next.publicKey) })
  }
  const check = async () => {
    const rows = (await db`SELECT created_at FROM signing_keys WHERE kid = ${keyId(own.publicKey)}`) as {
      created_at: string
    }[]
    const nowMs = clock.now().getTime()
    const createdAt = rows[0]?.created_at
    if (createdAt === undefined) await replace("its key was removed from the keyring")
    else if (nowMs - Date.parse(createdAt) > ROTATE_AFTER_MS) await replace("rotation")
    const expired = new Date(nowMs - ROTATE_AFTER_MS - sessionMaxMs).toISOString()
    await db`DELETE FROM signing_keys WHERE created_at < ${expired} AND kid <> ${keyId(own.publicKey)}`
  }

  await publish(local)
  // One process alone: a key made because the file was gone is the "log everyone out".
  if (local.created && !shared) await db`DELETE FROM signing_keys WHERE kid <> ${keyId(local.publicKey)}`
  await check()
  let checking = false
  const timer = setInterval(async () => {
    if (checking) return
    checking = true
    try {
      await check()
    } catch (error) {
      log.warn("checking the signing keyring failed", { error })
    } finally {
      checking = false
    }
  }, CHECK_MS)
  timer.unref()

  return {
    path: local.path,
    created: local.created,
    signer: () => own,
    check,
    async publicKey(kid) {
      const nowMs = clock.now().getTime()
      const hit = cache.get(kid)
      if (hit && nowMs - hit.atMs < CHECK_MS) return hit.key
      cache.delete(kid)
      const rows = (await db`SELECT public_key FROM signing_keys WHERE kid = ${kid}`) as { public_key: string }[]
      const pem = rows[0]?.public_key
      if (pem === undefined) return null
      const key = createPublicKey(pem)
      // The row's key must be the one its id names, or a row written below the application could
      // make one replica's tokens verify with another key.
      if (keyId(key) !== kid) return null
      cache.set(kid, { key, atMs: nowMs })
      return key
    },
    close: () => clearInterval(timer),
  }
}
