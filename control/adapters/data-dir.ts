// The control plane's data directory holds everything that makes someone admin of the fleet: the
// database (password hashes, token hashes, the audit log), the admin token and the JWT signing key.
// So at every start it is made this user's alone: the directory 0700 and everything in it 0600 (0700
// for directories), however it was left (a directory made by hand or by an installer with 0755, a
// database written under a lax umask). One owned by another user is refused, not used: its owner can
// read it or put files in it whatever the modes say.
import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"

/** A data directory or database file the control plane must not use as it is; the message says why. */
export class StateError extends Error {
  override readonly name = "StateError"
}

export interface SecuredDataDir {
  /** Paths whose modes were tightened (to log: a person should know they were open). */
  tightened: string[]
}

const uid = () => process.getuid?.() ?? 0

function _ownedHere(path: string, ownerUid: number, what: string): void {
  if (ownerUid === uid()) return
  throw new StateError(
    `${what} ${path} belongs to uid ${ownerUid}, not to this user (uid ${uid()}): its owner could read the ` +
      `database and the admin token or replace them. Run Chimera as that user, or chown it to this one ` +
      `(or set CHIMERA_DATA_DIR to a directory of this user's own).`,
  )
}

/** Creates the data directory if needed and makes it and what it holds this user's alone. */
export function secureDataDir(dir: string): SecuredDataDir {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const stat = statSync(dir)
  if (!stat.isDirectory()) throw new StateError(`the data directory ${dir} is not a directory`)
  _ownedHere(dir, stat.uid, "the data directory")
  const tightened: string[] = []
  const tighten = (path: string, mode: number, wanted: number) => {
    if ((mode & 0o077) === 0) return
    try {
      chmodSync(path, wanted)
    } catch (error) {
      throw new StateError(
        `${path} is open to other users (mode ${(mode & 0o777).toString(8)}) and could not be made private: ${(error as Error).message}`,
      )
    }
    tightened.push(path)
  }
  tighten(dir, stat.mode, 0o700)
  const walk = (parent: string) => {
    for (const name of readdirSync(parent)) {
      const path = join(parent, name)
      // A link's own mode means nothing, and chmod would follow it out of the directory.
      const entry = lstatSync(path)
      if (entry.isSymbolicLink()) continue
      _ownedHere(path, entry.uid, entry.isDirectory() ? "the directory" : "the file")
      if (entry.isDirectory()) {
        tighten(path, entry.mode, 0o700)
        walk(path)
      } else tighten(path, entry.mode, 0o600)
    }
  }
  walk(dir)
  return { tightened }
}
