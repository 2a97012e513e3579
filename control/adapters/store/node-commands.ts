// The commands a node was sent, newest first, with what its agent answered: `activate` (a desired
// closure) and `run` (a relayed shell command, stored redacted once answered). Read-only; the fleet
// store writes these rows. Output is cut to OUTPUT_CHARS here so one page stays small.
import type { SQL } from "bun"

const OUTPUT_CHARS = 8192

export interface NodeCommandView {
  id: string
  kind: string
  /** The shell command of a `run`, the closure of an `activate`. */
  summary: string
  createdAt: string
  deliveredAt: string | null
  ackedAt: string | null
  success: boolean | null
  exitCode: number | null
  timedOut: boolean
  /** Its caller cancelled it (a relayed run's cancel). */
  cancelled: boolean
  output: string
  stderr: string
  truncated: boolean
}

type Row = Record<string, unknown>

const cut = (s: unknown) => {
  const text = s === null || s === undefined ? "" : String(s)
  return { text: text.slice(0, OUTPUT_CHARS), cut: text.length > OUTPUT_CHARS }
}

function summaryOf(kind: string, payload: unknown): string {
  try {
    const p = JSON.parse(String(payload)) as { command?: unknown; closure?: unknown }
    const value = kind === "run" ? p.command : p.closure
    return typeof value === "string" ? value : ""
  } catch {
    return ""
  }
}

export function nodeCommands(db: SQL) {
  return {
    async recent(nodeId: string, limit: number): Promise<NodeCommandView[]> {
      const rows: Row[] = await db`
        SELECT id, kind, payload, created_at, delivered_at, acked_at, success, output, exit_code, stderr, timed_out,
          cancelled_at
        FROM commands WHERE node_id = ${nodeId} ORDER BY created_at DESC, id DESC LIMIT ${limit}`
      return rows.map((r) => {
        const output = cut(r.output)
        const stderr = cut(r.stderr)
        return {
          id: String(r.id),
          kind: String(r.kind),
          summary: summaryOf(String(r.kind), r.payload),
          createdAt: String(r.created_at),
          deliveredAt: r.delivered_at === null ? null : String(r.delivered_at),
          ackedAt: r.acked_at === null ? null : String(r.acked_at),
          success: r.success === null || r.success === undefined ? null : Number(r.success) === 1,
          exitCode: r.exit_code === null || r.exit_code === undefined ? null : Number(r.exit_code),
          timedOut: Number(r.timed_out ?? 0) === 1,
          cancelled: r.cancelled_at !== null && r.cancelled_at !== undefined,
          output: output.text,
          stderr: stderr.text,
          truncated: output.cut || stderr.cut,
        }
      })
    },
  }
}

export type NodeCommands = ReturnType<typeof nodeCommands>
