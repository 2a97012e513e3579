// Is each target running the expected closure? One check for `chimera watch` (agentless drift
// detection) and MCP's check_congruence: a target is congruent when its system profile and its
// running system (/run/current-system) are both the expected closure.
import type { StorePath } from "../../protocol/ids.ts"
import type { RemoteExecutorPort, SystemState, Target } from "./operation-ports.ts"

export type Congruence =
  | { target: Target; status: "congruent"; state: SystemState }
  | { target: Target; status: "drifted"; state: SystemState; kinds: ("profile-drift" | "runtime-drift")[] }
  | { target: Target; status: "unreachable"; error: string }

export async function checkCongruence(
  exec: RemoteExecutorPort,
  targets: Target[],
  expected: StorePath,
): Promise<Congruence[]> {
  return Promise.all(
    targets.map(async (target): Promise<Congruence> => {
      let state: SystemState
      try {
        state = await exec.systemState(target)
      } catch (error) {
        return { target, status: "unreachable", error: (error as Error).message }
      }
      const kinds: ("profile-drift" | "runtime-drift")[] = []
      if (state.profile !== expected) kinds.push("profile-drift")
      if (state.current !== expected) kinds.push("runtime-drift")
      return kinds.length === 0 ? { target, status: "congruent", state } : { target, status: "drifted", state, kinds }
    }),
  )
}
