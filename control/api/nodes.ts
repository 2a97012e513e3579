// Operator routes for nodes: join tokens, listing, one node, and its desired closure.
import { Hono } from "hono"
import { z } from "zod"
import { EnrolledNodeId, NodeId, StorePath } from "../../protocol/ids.ts"
import type { Fleet } from "../domain/fleet.ts"
import { nodeView } from "../domain/node.ts"
import type { ApiEnv } from "./auth.ts"
import { jsonBody, params } from "./validate.ts"

export const JoinTokenRequest = z
  .object({
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .optional(),
    nodeId: EnrolledNodeId.optional(),
  })
  .strict()

export const SetDesiredRequest = z.object({ closure: StorePath }).strict()
const NodeParams = z.object({ id: NodeId })

export const nodeRoutes = (fleet: Fleet) =>
  new Hono<ApiEnv>()
    .post("/api/nodes/join-tokens", jsonBody(JoinTokenRequest), async (c) =>
      c.json(await fleet.createJoinToken(c.req.valid("json")), 201),
    )
    .get("/api/nodes", async (c) => c.json({ nodes: (await fleet.listNodes()).map(nodeView) }))
    .get("/api/nodes/:id", params(NodeParams), async (c) =>
      c.json(nodeView(await fleet.getNode(c.req.valid("param").id))),
    )
    .put("/api/nodes/:id/desired", params(NodeParams), jsonBody(SetDesiredRequest), async (c) =>
      c.json(nodeView(await fleet.setDesired(c.req.valid("param").id, c.req.valid("json").closure))),
    )
