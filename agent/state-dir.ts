// The agent's state directory (default /var/lib/chimera-agent, mode 0700): the per-node credential
// (credential.json, 0600; while enrolment is under way, enrolling.json), the desired closure last learned
// (desired.json, so it is enforced across restarts and while the control plane is down), the drift it
// last told (drift.json, so a restarted agent still reports it resolved) and the report spool
// (spool.jsonl). Files are parsed at this edge and written durably.
import { chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { z } from "zod"
import { DriftKind } from "../protocol/agent.ts"
import { NodeId, StorePath } from "../protocol/ids.ts"
import { writeFileDurably } from "./durable-file.ts"

export const StoredCredential = z
  .object({ nodeId: NodeId, credential: z.string().min(32), controlUrl: z.string(), enrolledAt: z.iso.datetime() })
  .strict()
export type StoredCredential = z.infer<typeof StoredCredential>

/** A credential this agent made and is enrolling with (enrolling.json), until the control plane took it. */
export const PendingEnrolment = z.object({ nodeId: NodeId, credential: z.string().min(32) }).strict()
export type PendingEnrolment = z.infer<typeof PendingEnrolment>

export const StoredDesired = z.object({ closure: StorePath, setAt: z.iso.datetime(), source: z.string() }).strict()
export type StoredDesired = z.infer<typeof StoredDesired>

/** The drift the agent last told (or a heal accounted for), against its desired closure; none: congruent. */
export const StoredDrift = z.object({ desired: StorePath, kinds: z.array(DriftKind) }).strict()
export type StoredDrift = z.infer<typeof StoredDrift>

export interface StateDir {
  readonly path: string
  readonly spoolPath: string
  readCredential(): StoredCredential | null
  writeCredential(credential: StoredCredential): void
  readPendingEnrolment(): PendingEnrolment | null
  writePendingEnrolment(pending: PendingEnrolment): void
  clearPendingEnrolment(): void
  readDesired(): StoredDesired | null
  writeDesired(desired: StoredDesired): void
  readDrift(): StoredDrift | null
  writeDrift(drift: StoredDrift): void
}

export class StateFileError extends Error {
  readonly code = "E_STATE_FILE"
  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`)
    this.name = "StateFileError"
  }
}

export function openStateDir(path: string): StateDir {
  mkdirSync(path, { recursive: true, mode: 0o700 })
  // Another user's directory (one made beforehand under a shared parent) stays theirs to open up
  // again whatever its mode, with the credential in it: it is refused, as is their link to one.
  const me = process.getuid?.()
  const link = lstatSync(path)
  const dir = link.isSymbolicLink() ? statSync(path) : link
  // A link root made (a NixOS module's, say) is as good as the directory it leads to.
  const owners = [dir.uid, ...(link.isSymbolicLink() && link.uid !== 0 ? [link.uid] : [])]
  for (const owner of owners)
    if (me !== undefined && owner !== me)
      throw new StateFileError(
        path,
        `belongs to uid ${owner}, not to this agent's user (uid ${me}), who could read the node's credential in it; remove it, or give --state-dir a directory of this user's`,
      )
  if (!dir.isDirectory()) throw new StateFileError(path, "is not a directory; give --state-dir a directory")
  // mkdir leaves an existing directory's mode alone; the credential must not be readable by others.
  chmodSync(path, 0o700)
  const file = (name: string) => join(path, name)
  return {
    path,
    spoolPath: file("spool.jsonl"),
    readCredential: () => _read(file("credential.json"), StoredCredential),
    writeCredential: (c) => writeFileDurably(file("credential.json"), `${JSON.stringify(c, null, 2)}\n`, 0o600),
    readPendingEnrolment: () => _read(file("enrolling.json"), PendingEnrolment),
    writePendingEnrolment: (p) => writeFileDurably(file("enrolling.json"), `${JSON.stringify(p)}\n`, 0o600),
    clearPendingEnrolment: () => rmSync(file("enrolling.json"), { force: true }),
    readDesired: () => _read(file("desired.json"), StoredDesired),
    writeDesired: (d) => writeFileDurably(file("desired.json"), `${JSON.stringify(d, null, 2)}\n`, 0o600),
    readDrift: () => _read(file("drift.json"), StoredDrift),
    writeDrift: (d) => writeFileDurably(file("drift.json"), `${JSON.stringify(d)}\n`, 0o600),
  }
}

function _read<T>(path: string, schema: z.ZodType<T>): T | null {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null
    throw new StateFileError(path, (err as Error).message)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new StateFileError(path, "not valid JSON; fix or delete it")
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new StateFileError(path, `unexpected content: ${z.prettifyError(parsed.error)}`)
  return parsed.data
}
