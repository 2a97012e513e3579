// The clock turn leases are judged by. Replicas on one PostgreSQL database read the database's
// (`clock_timestamp()`, in the statement that takes, renews, reads or lapses a lease): two replicas
// whose own clocks differ by seconds would otherwise both think they hold a chat's turn, or one would
// take it over from a live holder, or wait past a dead one's lapse. SQLite is one process: its clock
// (the control plane's Clock port) is the only one.
import type { SQL } from "bun"
import type { Clock } from "../../domain/ports.ts"
import type { Dialect } from "./migrations.ts"

/** A fragment of SQL that reads as the time now in milliseconds since the epoch. */
export type NowMs = (sql: SQL) => SQL.Query<unknown>

export function leaseClock(dialect: Dialect, clock: Clock): NowMs {
  if (dialect === "postgres") return (sql) => sql`(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint`
  return (sql) => sql`${clock.now().getTime()}`
}
