// Node identity after enrolment: credential rotation and revocation.
//
// Rotation is a handshake the agent drives, so a crash on either side never strands a node:
//   1. An admin asks (POST /api/nodes/:id/rotate-credential), or the credential outlives
//      `auth.node_credential_rotation_days`; from then on the heartbeat answer says `rotateCredential`.
//   2. The agent asks for a new credential (POST /api/agent/:id/credential) with its current one,
//      stores the answer durably, and uses it from then on.
//   3. The first request made with the new credential promotes it; only then does the old one stop.
// If the agent dies between 2 and 3 it still holds the old, working credential and is asked again.
// Revocation forgets every credential of the node at once (and unused join tokens bound to it), and
// ends the long polls its agent holds open, on every replica: each is answered 401, never a command.
import { notFound, unauthenticated } from "../errors.ts"
import type { Clock, EventBusPort, StorePort } from "../ports.ts"
import { hashToken, newToken } from "../tokens.ts"
import type { AuthStorePort } from "./ports.ts"

export interface NodeIdentityDeps {
  authStore: AuthStorePort
  store: StorePort
  bus: EventBusPort
  clock: Clock
  /** Told once a node's credentials are revoked: its open long polls end now (Fleet.credentialRetired). */
  credentialRetired?: (nodeId: string) => void
  /** Told of commands a removal closed unanswered: relays waiting for them read their end now. */
  commandsClosed?: (ids: string[]) => void
}

export function createNodeIdentity(deps: NodeIdentityDeps) {
  const { authStore, store, bus, clock, credentialRetired, commandsClosed } = deps
  const now = () => clock.now().toISOString()
  const requireNode = async (nodeId: string) => {
    const node = await store.getNode(nodeId)
    if (!node) throw notFound(`node ${JSON.stringify(nodeId)}`)
    return node
  }
  const emit = async (type: "node.revoked" | "node.removed" | "node.rotation-requested", nodeId: string) => {
    const event = await store.appendEvent({ type, nodeId, at: now(), data: {} })
    bus.publish([event])
  }

  return {
    async requestRotation(nodeId: string) {
      await requireNode(nodeId)
      const requested = await authStore.requestRotation(nodeId, now())
      if (requested) await emit("node.rotation-requested", nodeId)
      return { nodeId, rotationRequested: requested }
    },

    /**
     * Step 2: a fresh credential, pending until first used. Only the node itself may ask, with the
     * credential it presented (`current`), which must still be the node's when the new one is stored.
     */
    async issueRotated(nodeId: string, current: string) {
      const credential = newToken("node")
      if (!(await authStore.setPendingCredential(nodeId, hashToken(credential), hashToken(current))))
        throw unauthenticated("the node credential was revoked or replaced while this request ran")
      return { nodeId, credential }
    },

    async revoke(nodeId: string) {
      const node = await requireNode(nodeId)
      // Again is harmless (join tokens made since are cancelled too), but it is no new event.
      await authStore.revokeNode(nodeId, now())
      credentialRetired?.(nodeId)
      if (node.revoked) return { nodeId, revoked: true, alreadyRevoked: true }
      await emit("node.revoked", nodeId)
      return { nodeId, revoked: true, alreadyRevoked: false }
    },

    /** A machine retired: revoked, and gone from the fleet's lists, its incidents resolved (node.removed). */
    async remove(nodeId: string) {
      await requireNode(nodeId)
      // Removed by a request that ran alongside: the same answer, no second event.
      const closed = await authStore.removeNode(nodeId, now())
      if (closed === null) throw notFound(`node ${JSON.stringify(nodeId)}`)
      credentialRetired?.(nodeId)
      if (closed.length > 0) commandsClosed?.(closed)
      await emit("node.removed", nodeId)
      return { nodeId, removed: true }
    },
  }
}

export type NodeIdentity = ReturnType<typeof createNodeIdentity>
