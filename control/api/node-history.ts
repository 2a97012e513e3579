// What the node page shows beyond the node itself: its recent load, memory and disk (from heartbeats,
// control/domain/health-history.ts) and the commands it was sent with their answers. Command output
// is what an operator ran, so it needs `commands:run`, not just `fleet:read` (route-permissions.ts).
import { Hono } from "hono"
import { z } from "zod"
import { NodeId } from "../../protocol/ids.ts"
import type { NodeCommands } from "../adapters/store/node-commands.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { HealthHistory } from "../domain/health-history.ts"
import type { ApiEnv } from "./auth.ts"
import { params, query } from "./validate.ts"

const NodeParams = z.object({ id: NodeId })
const Limit = z.object({ limit: z.coerce.number().int().min(1).max(200).default(20) })

export const nodeHistoryRoutes = (fleet: Fleet, history: HealthHistory, commands: NodeCommands) =>
  new Hono<ApiEnv>()
    .get("/api/nodes/:id/health-history", params(NodeParams), async (c) => {
      const { id } = c.req.valid("param")
      await fleet.getNode(id)
      return c.json({ nodeId: id, samples: history.samples(id) })
    })
    .get("/api/nodes/:id/commands", params(NodeParams), query(Limit), async (c) => {
      const { id } = c.req.valid("param")
      await fleet.getNode(id)
      return c.json({ nodeId: id, commands: await commands.recent(id, c.req.valid("query").limit) })
    })
