// Identifiers shared by the agent and the control plane. A Nix store path is
// `/nix/store/<hash>-<name>`; the hash part is 32 characters of Nix's base32 alphabet
// (0-9 and a-z without e, o, u, t), which is what Chimera compares and shows as a `NixHash`.
import { z } from "zod"

const NIX_BASE32 = "[0-9a-df-np-sv-z]"

export const NixHash = z.string().regex(new RegExp(`^${NIX_BASE32}{32}$`), "expected a 32-character Nix base32 hash")
export type NixHash = z.infer<typeof NixHash>

// Store path names follow Nix's own rule: letters, digits and +-._?= only, not starting with a dot.
export const StorePath = z
  .string()
  .max(300)
  .regex(
    new RegExp(`^/nix/store/${NIX_BASE32}{32}-[A-Za-z0-9+\\-_?=][A-Za-z0-9+\\-._?=]*$`),
    "expected a Nix store path like /nix/store/<32-char hash>-<name>",
  )
export type StorePath = z.infer<typeof StorePath>

export const NodeId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
    "expected a node id of 1-63 letters, digits, dots, dashes or underscores, starting with a letter or digit",
  )
export type NodeId = z.infer<typeof NodeId>

/**
 * The id a node enrols under: any NodeId but `health`, since MCP's `node://health` names the whole
 * fleet and `node://{id}` each node, so a node of that name could not be read.
 */
export const EnrolledNodeId = NodeId.refine(
  // `node://Health` keeps its case, and resources are looked up by their exact URI.
  (id) => id !== "health",
  "node id \"health\" is reserved (MCP's node://health is the whole fleet's health); choose another",
)

export const SessionId = z
  .string()
  // No `.` or `:`: tmux reads them as window and pane separators in targets (and renames such sessions).
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "expected a session name of letters, digits, dashes or underscores")
export type SessionId = z.infer<typeof SessionId>

/** The hash part of a store path (or of any path below it). */
export function hashOf(path: string): NixHash {
  const hash = path.slice("/nix/store/".length, "/nix/store/".length + 32)
  return NixHash.parse(hash)
}

/** The hash part, or null when `path` is null or not in the store. */
export function maybeHashOf(path: string | null | undefined): NixHash | null {
  if (!path?.startsWith("/nix/store/")) return null
  const parsed = NixHash.safeParse(path.slice(11, 43))
  return parsed.success ? parsed.data : null
}
