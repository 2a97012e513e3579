// A write that must not be lost (a deploy's record, which nothing can rebuild once the deploy has
// ended) tried again while the database is away: a PostgreSQL restart or failover lasts seconds to a
// minute, and the deploy meanwhile reads `running` on every replica, as it still is until its record
// lands. The wait is bounded (STORE_WAIT_MS) and ends at a stop; any other error ends it at once.
import { createLogger } from "../../protocol/log.ts"
import { storeAway } from "../domain/store-away.ts"

const log = createLogger("operations")

/** How long a write waits for the database to come back before it is given up. */
export const STORE_WAIT_MS = 5 * 60_000
const RETRY_MS = 1000

export interface UntilStoredOptions {
  /** Aborted when the control plane stops: the next failure is the last. */
  signal?: AbortSignal
  waitMs?: number
  /** Fields that name what is written, on every line about it. */
  fields?: Record<string, unknown>
}

/** Runs `write`, again each second while the database is away, for up to `waitMs`. */
export async function untilStored<T>(what: string, write: () => Promise<T>, o: UntilStoredOptions = {}): Promise<T> {
  const waitMs = o.waitMs ?? STORE_WAIT_MS
  const started = performance.now()
  for (let tries = 1; ; tries++) {
    try {
      const done = await write()
      if (tries > 1)
        log.warn(`${what}: written once the database answered again`, {
          ...o.fields,
          tries,
          waitedMs: Math.round(performance.now() - started),
        })
      return done
    } catch (error) {
      if (!storeAway(error)) throw error
      const waited = performance.now() - started
      if (o.signal?.aborted || waited + RETRY_MS > waitMs) {
        log.error(
          `${what}: given up, the database could not be reached for ${Math.round(waited / 1000)} s${o.signal?.aborted ? " and this control plane is stopping" : ""}`,
          { ...o.fields, tries, error },
        )
        throw error
      }
      if (tries === 1)
        log.warn(
          `${what}: the database cannot be reached; trying again each second until it answers, for up to ${waitMs / 60_000} minutes`,
          { ...o.fields, error },
        )
      await Bun.sleep(RETRY_MS)
    }
  }
}
