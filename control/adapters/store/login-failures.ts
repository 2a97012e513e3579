// Failed logins per username in the database, so that replicas on one PostgreSQL database share the
// login backoff (control/domain/auth/login-backoff.ts): one row per username that failed lately, its
// failure count, when it last failed and until when it is locked. Rows of usernames quiet for longer
// than the backoff remembers are deleted now and then, so sprayed usernames do not pile up.
import type { SQL } from "bun"
import type { FailureRecord, SharedFailures } from "../../domain/auth/login-backoff.ts"

/** How often (ms, at most) this process deletes rows nobody remembers any more. */
const PRUNE_EVERY_MS = 10 * 60_000

type Row = { failures: unknown; locked_until_ms: unknown; last_ms: unknown }
const toRecord = (r: Row): FailureRecord => ({
  failures: Number(r.failures),
  lockedUntilMs: Number(r.locked_until_ms),
  lastMs: Number(r.last_ms),
})

export function sharedLoginFailures(db: SQL): SharedFailures {
  let prunedAt = 0
  return {
    async read(username) {
      const rows =
        (await db`SELECT failures, locked_until_ms, last_ms FROM login_failures WHERE username = ${username}`) as Row[]
      return rows[0] ? toRecord(rows[0]) : null
    },
    async add(username, nowMs, forgetBeforeMs) {
      if (nowMs - prunedAt > PRUNE_EVERY_MS) {
        prunedAt = nowMs
        await db`DELETE FROM login_failures WHERE last_ms < ${forgetBeforeMs} AND locked_until_ms < ${nowMs}`
      }
      const rows = (await db`
        INSERT INTO login_failures (username, failures, locked_until_ms, last_ms) VALUES (${username}, 1, 0, ${nowMs})
        ON CONFLICT (username) DO UPDATE SET
          failures = CASE WHEN login_failures.last_ms < ${forgetBeforeMs} THEN 1 ELSE login_failures.failures + 1 END,
          locked_until_ms = CASE WHEN login_failures.last_ms < ${forgetBeforeMs} THEN 0 ELSE login_failures.locked_until_ms END,
          last_ms = ${nowMs}
        RETURNING failures, locked_until_ms, last_ms`) as Row[]
      return toRecord(rows[0] as Row)
    },
    async lock(username, untilMs) {
      await db`UPDATE login_failures SET locked_until_ms = ${untilMs} WHERE username = ${username} AND locked_until_ms < ${untilMs}`
    },
    async clear(username) {
      await db`DELETE FROM login_failures WHERE username = ${username}`
    },
  }
}
