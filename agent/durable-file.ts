// Durable file writes for the agent's state (credential, desired closure, spool). A plain write can
// leave an empty or half-written file after a power loss; writing a temp file, fsyncing it, renaming it
// over the old one and fsyncing the directory leaves either the old content or the new, never a mix.
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs"
import { dirname } from "node:path"

export function writeFileDurably(path: string, content: string, mode = 0o600): void {
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, "w", mode)
  try {
    // A temp file left by an earlier crash keeps its old mode; the credential must never be readable.
    fchmodSync(fd, mode)
    writeSync(fd, content)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  fsyncDir(dirname(path))
}

/** A rename or a new file is durable only once its directory entry is on disk. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r")
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
