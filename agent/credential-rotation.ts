// Credential rotation, the agent's half (the handshake is described in
// control/domain/auth/node-identity.ts). When a heartbeat answer says `rotateCredential`, the agent
// fetches a new credential with its current one, writes it durably to the state dir, and only then
// uses it. A crash or a failed write before that leaves the old credential on disk and still valid on
// the control plane, which asks again on the next heartbeat.
import type { NodeId } from "../protocol/ids.ts"
import { createLogger } from "../protocol/log.ts"
import type { OrchestratorPort } from "./control-client.ts"
import type { StateDir } from "./state-dir.ts"

const log = createLogger("credential")

export interface RotatorInput {
  client: OrchestratorPort
  stateDir: StateDir
  nodeId: NodeId
  controlUrl: string
  /** Makes the agent's calls use the new credential from now on. */
  use(credential: string): void
}

/** Returns `rotate`, which never throws and never runs twice at once. */
export function createCredentialRotator(input: RotatorInput): () => Promise<boolean> {
  let running: Promise<boolean> | null = null
  const rotate = async (): Promise<boolean> => {
    try {
      const { nodeId, credential } = await input.client.rotateCredential()
      if (nodeId !== input.nodeId) throw new Error(`the control plane rotated ${nodeId}, not ${input.nodeId}`)
      const stored = input.stateDir.readCredential()
      input.stateDir.writeCredential({
        nodeId,
        credential,
        controlUrl: input.controlUrl,
        enrolledAt: stored?.enrolledAt ?? new Date().toISOString(),
      })
      input.use(credential)
      log.info("credential rotated", { nodeId })
      return true
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      log.warn("credential rotation failed; the current credential still works, retrying when asked again", { error })
      return false
    }
  }
  return () => {
    running ??= rotate().finally(() => {
      running = null
    })
    return running
  }
}
