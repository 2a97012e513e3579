// The control plane's JWT signing key: an RSA 2048 key pair made on first start and kept in the data
// directory as PKCS#8 PEM (jwt-signing-key.pem, mode 0600, directory 0700). Replicas that share a
// database must share this file too, or each refuses the others' sessions. Deleting it and
// restarting rotates the key and ends every session, which is the emergency "log everyone out".
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto"
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { SigningKeys } from "../domain/auth/jwt.ts"

export const SIGNING_KEY_FILE = "jwt-signing-key.pem"

export function loadOrCreateSigningKeys(dataDir: string): SigningKeys & { path: string; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, SIGNING_KEY_FILE)
  let created = false
  let pem: string
  try {
    pem = readFileSync(path, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
    pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
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
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(pem)
  } catch {
    throw new Error(`${path} does not hold a PEM private key; delete it to create a new one (this ends every session)`)
  }
  if (privateKey.asymmetricKeyType !== "rsa") throw new Error(`${path} holds a non-RSA key; RS256 needs RSA`)
  return { privateKey, publicKey: createPublicKey(privateKey), path, created }
}
