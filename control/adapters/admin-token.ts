// The bootstrap admin token: made on the first start, kept in clear only in the data dir of the
// control plane that made it (`admin.token`, 0600), and in the database only as its SHA-256 hash.
// Replicas on one PostgreSQL database share it through that hash: the first to start (under the
// startup lock) makes it, and the others take the database's word. A later replica never installs a
// token of its own over it, so starting a second replica never locks the first's operator out; a
// replica whose data dir has no token file (or another one) says where the fleet's token is. On SQLite
// the database is this data dir's own, so the file stays the truth: replacing or deleting it and
// restarting replaces the token, as it always has.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { SQL } from "bun"
import { createLogger } from "../../protocol/log.ts"
import { BOOTSTRAP_TOKEN_ID } from "../domain/auth/accounts.ts"
import { hashToken, newToken, tokenKind } from "../domain/tokens.ts"
import type { Dialect } from "./store/migrations.ts"

const log = createLogger("admin-token")

export interface AdminToken {
  /** Where this data dir keeps it; null when another replica holds the fleet's token. */
  path: string | null
  created: boolean
}

function _readFile(path: string): string | null {
  if (!existsSync(path)) return null
  const token = readFileSync(path, "utf8").trim()
  if (tokenKind(token) !== "admin")
    throw new Error(`${path} does not hold a Chimera admin token; delete it to create a new one`)
  return token
}

/** Reads (or makes) this data dir's admin token and makes the database agree, as the rules above say. */
export async function ensureAdminToken(db: SQL, dialect: Dialect, dataDir: string, now: string): Promise<AdminToken> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, "admin.token")
  const shared = dialect === "postgres"
  const rows = (await db`SELECT token_hash FROM api_tokens WHERE id = ${BOOTSTRAP_TOKEN_ID}`) as {
    token_hash: string
  }[]
  const installed = rows[0]?.token_hash ?? null
  let token = _readFile(path)
  if (shared && installed !== null) {
    if (token === null) {
      log.info(
        "the admin token was made by the first replica started on this database; it is in that replica's data dir",
        {
          dataDir,
        },
      )
      return { path: null, created: false }
    }
    if (hashToken(token) !== installed) {
      log.warn(
        "this data dir's admin.token is not the fleet's (the first replica started on this database made that one); it is left unused",
        { path },
      )
      return { path: null, created: false }
    }
  }
  let created = false
  if (token === null) {
    token = newToken("admin")
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" })
    chmodSync(path, 0o600)
    created = true
  }
  await db`
    INSERT INTO api_tokens (id, name, token_hash, role, created_at) VALUES (${BOOTSTRAP_TOKEN_ID}, 'bootstrap admin', ${hashToken(token)}, 'admin', ${now})
    ON CONFLICT (id) DO UPDATE SET token_hash = ${hashToken(token)}, revoked_at = NULL`
  return { path, created }
}
