// The agent's side of the wire (protocol/agent.ts): enrolment with a join token, then heartbeats,
// reports, and relayed commands with the node's own credential, only ever for its own node id.
import { Hono } from "hono"
import { z } from "zod"
import { CommandAck, EnrollRequest, MAX_COMMAND_WAIT_SECONDS, NodeHealth, ReportBatch } from "../../protocol/agent.ts"
import { NodeId } from "../../protocol/ids.ts"
import { forbidden } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import { type ApiEnv, bearerToken } from "./auth.ts"
import { jsonBody, params, query } from "./validate.ts"

const NodeParams = z.object({ nodeId: NodeId })
const CommandParams = z.object({ nodeId: NodeId, id: z.string().min(1).max(64) })
const WaitQuery = z.object({ wait: z.coerce.number().min(0).max(MAX_COMMAND_WAIT_SECONDS).default(0) })

/** Enrolment authenticates with the join token itself, so it is mounted before the bearer middleware. */
export const enrollRoutes = (fleet: Fleet) =>
  new Hono<{ Variables: { joinToken: string } }>().post(
    "/api/agent/enroll",
    async (c, next) => {
      // Who asks comes before what they send: an unauthenticated enrolment is a 401, whatever its body.
      c.set("joinToken", bearerToken(c.req.header("authorization")))
      await next()
    },
    jsonBody(EnrollRequest),
    async (c) => c.json(await fleet.enroll(c.get("joinToken"), c.req.valid("json")), 201),
  )

export const agentRoutes = (fleet: Fleet) =>
  new Hono<ApiEnv>()
    .post("/api/agent/:nodeId/heartbeat", params(NodeParams), jsonBody(NodeHealth), async (c) => {
      const health = c.req.valid("json")
      if (health.nodeId !== c.req.valid("param").nodeId)
        throw forbidden("the heartbeat's nodeId is not the node in the path")
      const answer = await fleet.heartbeat(health)
      // The rotation handshake starts here (control/domain/auth/node-identity.ts).
      const principal = c.get("principal")
      return c.json(principal.kind === "node" && principal.rotationDue ? { ...answer, rotateCredential: true } : answer)
    })
    .post("/api/agent/:nodeId/reports", params(NodeParams), jsonBody(ReportBatch), async (c) =>
      c.json(await fleet.ingestReports(c.req.valid("param").nodeId, c.req.valid("json").reports)),
    )
    .get("/api/agent/:nodeId/commands", params(NodeParams), query(WaitQuery), async (c) => {
      const commands = await fleet.commandsFor(
        c.req.valid("param").nodeId,
        c.req.valid("query").wait * 1000,
        c.req.raw.signal,
      )
      return c.json({ commands })
    })
    .post("/api/agent/:nodeId/commands/:id/ack", params(CommandParams), jsonBody(CommandAck), async (c) => {
      const { nodeId, id } = c.req.valid("param")
      await fleet.ackCommand(nodeId, id, c.req.valid("json"))
      return c.json({ ok: true })
    })
