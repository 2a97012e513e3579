// The agent's side of the wire (protocol/agent.ts): enrolment with a join token, then heartbeats,
// reports, and relayed commands with the node's own credential, only ever for its own node id.
import { type Context, Hono } from "hono"
import { z } from "zod"
import { CommandAck, EnrollRequest, MAX_COMMAND_WAIT_SECONDS, NodeHealth, ReportBatch } from "../../protocol/agent.ts"
import { NodeId } from "../../protocol/ids.ts"
import { ChimeraError, forbidden } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { Principal } from "../domain/ports.ts"
import type { ReportQuota } from "../domain/report-quota.ts"
import { type ApiEnv, bearerToken } from "./auth.ts"
import { jsonBody, params, query } from "./validate.ts"

export const NodeParams = z.object({ nodeId: NodeId })
export const CommandParams = z.object({ nodeId: NodeId, id: z.string().min(1).max(64) })
export const WaitQuery = z.object({ wait: z.coerce.number().min(0).max(MAX_COMMAND_WAIT_SECONDS).default(0) })

/**
 * What each agent route does once the guard has admitted its caller and its input is parsed. The
 * routes below and the agent fast path (agent-fast-path.ts) both answer through these.
 */
export const agentActions = (fleet: Fleet, quota: ReportQuota) => {
  const ownNode = (nodeId: string, health: NodeHealth) => {
    if (health.nodeId !== nodeId) throw forbidden("the heartbeat's nodeId is not the node in the path")
  }
  return {
    /** Any heartbeat; the store holds a quiet one itself (StorePort.recordHeartbeat). */
    async heartbeat(principal: Principal, nodeId: string, health: NodeHealth) {
      ownNode(nodeId, health)
      return heartbeatAnswer(principal, await fleet.heartbeat(health))
    },
    /** The heartbeat's answer when the store took it at once (Fleet.heartbeatHeld), or null: `heartbeat`. */
    heldHeartbeat(principal: Principal, nodeId: string, health: NodeHealth) {
      ownNode(nodeId, health)
      const answer = fleet.heartbeatHeld(health)
      return answer && heartbeatAnswer(principal, answer)
    },
    /**
     * A node past its report quota is refused here, before its body is read (Retry-After set on `c`);
     * an admitted body is charged as soon as its size is known, whatever then becomes of it, so bodies
     * that fail to parse cost their sender as much as good ones.
     */
    async admitReports(c: Context, nodeId: string) {
      try {
        quota.admit(nodeId)
      } catch (error) {
        const retryAfter = error instanceof ChimeraError ? (error.detail as { retryAfter?: number })?.retryAfter : null
        if (retryAfter) c.header("Retry-After", String(retryAfter))
        throw error
      }
      const length = Number.parseInt(c.req.header("content-length") ?? "", 10)
      // Without a Content-Length the body is read now (under the body limit) to learn its size.
      quota.charge(nodeId, Number.isFinite(length) ? length : (await c.req.text()).length, 0)
    },
    async reports(nodeId: string, batch: ReportBatch) {
      quota.charge(nodeId, 0, batch.reports.length)
      return fleet.ingestReports(nodeId, batch.reports)
    },
    /** `credential`: the one the guard admitted, checked again whenever commands are handed out. */
    async commands(nodeId: string, credential: string, waitSeconds: number, signal: AbortSignal) {
      return fleet.commandsFor(nodeId, credential, waitSeconds * 1000, signal)
    },
    async ack(nodeId: string, id: string, ack: CommandAck) {
      await fleet.ackCommand(nodeId, id, ack)
      return { ok: true }
    },
  }
}

/** A heartbeat's answer to its node; the rotation handshake starts here (control/domain/auth/node-identity.ts). */
const heartbeatAnswer = (principal: Principal, answer: { desired: string | null }) =>
  principal.kind === "node" && principal.rotationDue ? { ...answer, rotateCredential: true } : answer

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

export const agentRoutes = (fleet: Fleet, quota: ReportQuota) => {
  const act = agentActions(fleet, quota)
  return new Hono<ApiEnv>()
    .post("/api/agent/:nodeId/heartbeat", params(NodeParams), jsonBody(NodeHealth), async (c) =>
      c.json(await act.heartbeat(c.get("principal"), c.req.valid("param").nodeId, c.req.valid("json"))),
    )
    .post(
      "/api/agent/:nodeId/reports",
      params(NodeParams),
      async (c, next) => {
        await act.admitReports(c, c.req.valid("param").nodeId)
        await next()
      },
      jsonBody(ReportBatch),
      async (c) => c.json(await act.reports(c.req.valid("param").nodeId, c.req.valid("json"))),
    )
    .get("/api/agent/:nodeId/commands", params(NodeParams), query(WaitQuery), async (c) => {
      const credential = bearerToken(c.req.header("authorization"))
      const { nodeId } = c.req.valid("param")
      return c.json(await act.commands(nodeId, credential, c.req.valid("query").wait, c.req.raw.signal))
    })
    .post("/api/agent/:nodeId/commands/:id/ack", params(CommandParams), jsonBody(CommandAck), async (c) => {
      const { nodeId, id } = c.req.valid("param")
      return c.json(await act.ack(nodeId, id, c.req.valid("json")))
    })
}
