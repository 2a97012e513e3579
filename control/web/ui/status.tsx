// A node's status as a coloured badge that always says its name in words (colour is never the only
// signal), and the order the fleet list puts statuses in: trouble first.
import { type NodeStatus, STATUSES } from "../client/types.ts"

export const STATUS_RANK: Record<NodeStatus, number> = Object.fromEntries(STATUSES.map((s, i) => [s, i])) as Record<
  NodeStatus,
  number
>

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge s-${status}`}>{status}</span>
}
