// Drift classification: the pure heart of the agent. It compares the desired closure (D) with the three
// links a NixOS machine has: the system profile's generation (P, /nix/var/nix/profiles/system), the
// running system (C, /run/current-system) and the booted system (B, /run/booted-system).
//   profile drift    P != D   someone switched or rolled back generations
//   runtime drift    C != D   `switch-to-configuration test`, a manual switch, or a half-done activation
//   missing closure  D is not in the local store, so nothing can activate it until it is realised
//   reboot required  B != C while the node runs what it should: the kernel/initrd differ from the running
//                    system; only a reboot fixes that, so it is reported, never healed
// No I/O here: the reconciler reads the links and asks the store, then calls these functions.
import type { DriftKind, SystemLinks } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"

export interface DriftState {
  /** Sorted, so two states with the same kinds compare equal. Empty when congruent. */
  kinds: DriftKind[]
  congruent: boolean
  rebootRequired: boolean
}

const ORDER: DriftKind[] = ["profile-drift", "runtime-drift", "missing-closure"]

export function classifyDrift(desired: StorePath | null, links: SystemLinks, desiredInStore: boolean): DriftState {
  const rebootRequired = isRebootRequired(desired, links)
  if (desired === null) return { kinds: [], congruent: true, rebootRequired }
  const kinds = new Set<DriftKind>()
  if (links.profile !== desired) kinds.add("profile-drift")
  if (links.current !== desired) kinds.add("runtime-drift")
  // A closure that is running but was garbage-collected cannot happen (it is a GC root), so a missing
  // closure only matters when the node is not already on it.
  if (!desiredInStore && kinds.size > 0) kinds.add("missing-closure")
  const sorted = ORDER.filter((k) => kinds.has(k))
  return { kinds: sorted, congruent: sorted.length === 0, rebootRequired }
}

// While the node drifts, B != C usually means only that C is wrong; healing fixes it without a reboot.
// So a reboot is required only when the running system is the desired one (or none is set) and the
// booted one differs. Without a booted link (containers, some test set-ups) nothing can be said.
function isRebootRequired(desired: StorePath | null, links: SystemLinks): boolean {
  if (links.booted === null || links.current === null) return false
  if (desired !== null && links.current !== desired) return false
  return links.booted !== links.current
}

/** True when two states differ in what is reported (kinds), so a report is due. */
export function driftChanged(before: DriftState | null, after: DriftState): boolean {
  const prev = before?.kinds ?? []
  return prev.length !== after.kinds.length || prev.some((k, i) => k !== after.kinds[i])
}

/** The phase a drifted node is in while no heal is running. */
export function driftPhase(state: DriftState): "congruent" | "drifted" | "missing-closure" {
  if (state.congruent) return "congruent"
  return state.kinds.includes("missing-closure") ? "missing-closure" : "drifted"
}
