// The commands queued for node agents: what a long poll hands out (and the cancels it says), the
// agents' acks, a relayed run's commands and their cancel, the relay closing what nobody answered, and
// the pruning and redaction of answered ones. `activate` is delivered again while unacknowledged, `run`
// at most once.
import type { SQL } from "bun"
import type { AgentCommand } from "../../../protocol/agent.ts"
import type { StorePort } from "../../domain/ports.ts"
import { num, str } from "./columns.ts"
import type { Dialect } from "./migrations.ts"

type Row = Record<string, unknown>

const chunks = <T>(xs: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size))

type CommandQueue = Pick<
  StorePort,
  | "pendingCommands"
  | "ackCommand"
  | "enqueueCommands"
  | "runCommands"
  | "cancelCommands"
  | "expireCommands"
  | "commandResults"
  | "pruneCommands"
  | "scrubCommands"
>

export function commandQueue(db: SQL, dialect: Dialect): CommandQueue {
  return {
    async pendingCommands(nodeId, credentialHash, now, redeliverBefore) {
      return db.begin(async (tx) => {
        // One read for both: what to deliver, and the cancels of what was delivered (rare; a poll runs
        // this for every agent of the fleet).
        const rows: Row[] = await tx`
          SELECT id, payload, delivered_at, cancelled_at FROM commands
          WHERE node_id = ${nodeId} AND acked_at IS NULL
            AND (delivered_at IS NULL OR (delivered_at < ${redeliverBefore} AND kind <> 'run')
              OR (cancelled_at IS NOT NULL AND (cancel_sent_at IS NULL OR cancel_sent_at < ${redeliverBefore})))
          ORDER BY created_at, id`
        // The credential is read after the commands, so any command seen was queued before a revocation
        // this read misses. On PostgreSQL (read committed) the node's row stays locked until the
        // deliveries commit: a revocation either came first and is seen here, or waits for them. On
        // SQLite the handle runs one transaction at a time (a revocation is one), and the hot path writes
        // only from timers, which cannot run inside this one. With nothing to hand out there is nothing
        // to lock.
        const lock = rows.length > 0 && dialect === "postgres" ? tx`FOR SHARE` : tx``
        const holder: Row[] = await tx`SELECT credential_hash FROM nodes WHERE id = ${nodeId} ${lock}`
        if (holder[0]?.credential_hash !== credentialHash) return null
        const commands: AgentCommand[] = []
        const cancel: string[] = []
        for (const r of rows) {
          const id = String(r.id)
          if (r.cancelled_at !== null && r.delivered_at !== null) {
            await tx`UPDATE commands SET cancel_sent_at = ${now} WHERE id = ${id}`
            cancel.push(id)
            continue
          }
          // Closed since the read (expired, or cancelled before delivery, by a concurrent transaction
          // on PostgreSQL): never handed out. The row lock makes this check and such a close serial.
          const marked: Row[] = await tx`
            UPDATE commands SET delivered_at = ${now} WHERE id = ${id} AND acked_at IS NULL RETURNING id`
          if (marked.length === 1) commands.push(JSON.parse(String(r.payload)) as AgentCommand)
        }
        return { commands, cancel }
      })
    },

    async ackCommand(nodeId, commandId, success, output, now, run) {
      const rows: Row[] = await db`
        UPDATE commands SET acked_at = ${now}, success = ${success ? 1 : 0}, output = ${output},
          exit_code = ${run?.exitCode ?? null}, stderr = ${run?.stderr ?? null}, timed_out = ${run?.timedOut ? 1 : 0}
        WHERE id = ${commandId} AND node_id = ${nodeId} AND acked_at IS NULL RETURNING kind, cancelled_at`
      const row = rows[0]
      return row ? { kind: String(row.kind) as AgentCommand["kind"], cancelled: row.cancelled_at !== null } : null
    },

    async enqueueCommands(commands) {
      const rows = commands.map(({ nodeId, command, runId }) => ({
        id: command.id,
        node_id: nodeId,
        kind: command.kind,
        payload: JSON.stringify(command),
        created_at: command.createdAt,
        run_id: runId ?? null,
      }))
      await db.begin(async (tx) => {
        for (const part of chunks(rows, 1000))
          await tx`INSERT INTO commands ${tx(part, "id", "node_id", "kind", "payload", "created_at", "run_id")}`
      })
    },

    async runCommands(runId) {
      const rows: Row[] = await db`SELECT id, node_id, payload, acked_at FROM commands WHERE run_id = ${runId}`
      return rows.map((r) => {
        const payload = JSON.parse(String(r.payload)) as { command?: unknown }
        return {
          id: String(r.id),
          nodeId: String(r.node_id),
          command: typeof payload.command === "string" ? payload.command : "",
          answered: r.acked_at !== null,
        }
      })
    },

    async cancelCommands(ids, now, reason) {
      const closed: { id: string; nodeId: string }[] = []
      const signalled: { id: string; nodeId: string }[] = []
      const pick = (rows: Row[], into: typeof closed) => {
        for (const r of rows) into.push({ id: String(r.id), nodeId: String(r.node_id) })
      }
      for (const part of chunks(ids, 1000)) {
        // Not delivered yet: closed in one statement, so a poll delivering it meanwhile either came
        // first (and the second statement marks it) or finds it closed (pendingCommands' recheck).
        pick(
          await db`
            UPDATE commands SET acked_at = ${now}, success = 0, output = '', stderr = ${reason}, cancelled_at = ${now}
            WHERE id IN ${db(part)} AND acked_at IS NULL AND delivered_at IS NULL RETURNING id, node_id`,
          closed,
        )
        pick(
          await db`
            UPDATE commands SET cancelled_at = COALESCE(cancelled_at, ${now})
            WHERE id IN ${db(part)} AND acked_at IS NULL RETURNING id, node_id`,
          signalled,
        )
      }
      return { closed, signalled }
    },

    async expireCommands(ids, now, reason) {
      const closed: string[] = []
      for (const part of chunks(ids, 1000)) {
        const rows: Row[] = await db`
          UPDATE commands SET acked_at = ${now}, success = 0, output = '', stderr = ${reason}, timed_out = 1
          WHERE id IN ${db(part)} AND acked_at IS NULL RETURNING id`
        for (const r of rows) closed.push(String(r.id))
      }
      return closed
    },

    async commandResults(ids) {
      const out = []
      for (const part of chunks(ids, 1000)) {
        const rows: Row[] = await db`
          SELECT id, node_id, success, output, exit_code, stderr, timed_out, cancelled_at, acked_at FROM commands
          WHERE id IN ${db(part)} AND acked_at IS NOT NULL`
        for (const r of rows)
          out.push({
            id: String(r.id),
            nodeId: String(r.node_id),
            success: num(r.success) === 1,
            output: String(r.output ?? ""),
            exitCode: r.exit_code === null || r.exit_code === undefined ? null : num(r.exit_code),
            stderr: str(r.stderr),
            timedOut: num(r.timed_out) === 1,
            cancelled: r.cancelled_at !== null && r.cancelled_at !== undefined,
            ackedAt: String(r.acked_at),
          })
      }
      return out
    },

    async pruneCommands(answeredBefore) {
      const rows: Row[] =
        await db`DELETE FROM commands WHERE acked_at IS NOT NULL AND acked_at < ${answeredBefore} RETURNING id`
      return rows.length
    },

    async scrubCommands(ids, payload) {
      for (const part of chunks(ids, 1000)) await db`UPDATE commands SET payload = ${payload} WHERE id IN ${db(part)}`
    },
  }
}
