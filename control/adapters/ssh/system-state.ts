// Where a node's three system links point, read in one round trip: the system profile
// (/nix/var/nix/profiles/system, what boots and what `nix-env --rollback` moves), /run/current-system
// (what runs) and /run/booted-system (what booted; differs after a switch until the next reboot).
// `readlink -e` resolves the whole chain (profile → system-N-link → store path) and prints nothing for
// a missing link, so each link gets its own line, empty when absent.
import { StorePath } from "../../../protocol/ids.ts"
import type { SystemState } from "../../domain/operation-ports.ts"

export const SYSTEM_LINKS = ["/nix/var/nix/profiles/system", "/run/current-system", "/run/booted-system"] as const

export const SYSTEM_STATE_COMMAND = `for p in ${SYSTEM_LINKS.join(" ")}; do readlink -e "$p" || echo; done`

const _storePath = (line: string | undefined): StorePath | null => {
  const parsed = StorePath.safeParse(line?.trim() ?? "")
  return parsed.success ? parsed.data : null
}

export function parseSystemState(stdout: string): SystemState {
  const [profile, current, booted] = stdout.split("\n")
  return { profile: _storePath(profile), current: _storePath(current), booted: _storePath(booted) }
}
