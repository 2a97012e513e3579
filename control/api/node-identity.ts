// Node identity routes: an admin asks a node to rotate its credential or revokes it; the node itself
// fetches its rotated credential (see control/domain/auth/node-identity.ts for the handshake).
import { Hono } from "hono"
import { z } from "zod"
import { NodeId } from "../../protocol/ids.ts"
import type { NodeIdentity } from "../domain/auth/node-identity.ts"
import { type ApiEnv, bearerToken } from "./auth.ts"
import { params } from "./validate.ts"

const NodeParams = z.object({ id: NodeId })
const AgentParams = z.object({ nodeId: NodeId })

export const nodeIdentityRoutes = (identity: NodeIdentity) =>
  new Hono<ApiEnv>()
    .post("/api/nodes/:id/rotate-credential", params(NodeParams), async (c) =>
      c.json(await identity.requestRotation(c.req.valid("param").id)),
    )
    .post("/api/nodes/:id/revoke", params(NodeParams), async (c) =>
      c.json(await identity.revoke(c.req.valid("param").id)),
    )
    .delete("/api/nodes/:id", params(NodeParams), async (c) => c.json(await identity.remove(c.req.valid("param").id)))
    // Only while a rotation is due (the heartbeat said rotateCredential): the guard refuses it otherwise.
    .post("/api/agent/:nodeId/credential", params(AgentParams), async (c) =>
      c.json(await identity.issueRotated(c.req.valid("param").nodeId, bearerToken(c.req.header("authorization"))), 201),
    )
