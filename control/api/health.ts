// GET /api/health: whether this control plane can do its job, for load balancers, monitors and
// `chimera` itself; GET /api/health/live: only that the process answers (a liveness probe, which
// must not restart a control plane because its database is down). Both need no token.
// Health reflects the store: it is read and written (adapters/store/health-probe.ts); when it cannot
// be, the answer is a 503 that says why. One probe runs at a time and its answer is reused for
// HEALTH_CACHE_MS, so a flood of health checks costs one probe per interval; a probe that takes
// longer than PROBE_TIMEOUT_MS counts as a failure (a locked or unreachable database).
import { Hono } from "hono"
import { createLogger } from "../../protocol/log.ts"
import { VERSION } from "../../protocol/version.ts"
import type { StoreProbe } from "../adapters/store/health-probe.ts"
import { storeReason } from "../domain/store-away.ts"

const log = createLogger("health")

export const HEALTH_CACHE_MS = 1500
const PROBE_TIMEOUT_MS = 2000

type Verdict = { ok: true } | { ok: false; reason: string }

function cachedProbe(probe: StoreProbe): () => Promise<Verdict> {
  let last: { verdict: Verdict; atMs: number } | null = null
  let running: Promise<Verdict> | null = null
  const run = async (): Promise<Verdict> => {
    let timer: Timer | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS)
    })
    try {
      await Promise.race([probe(), timeout])
      return { ok: true }
    } catch (error) {
      // The answer is public: PostgreSQL's own words (its role, its address) stay in the log.
      const reason = `the database cannot be read and written: ${storeReason(error)}`
      if (last?.verdict.ok !== false) log.error("store unhealthy", { reason, error })
      return { ok: false, reason }
    } finally {
      clearTimeout(timer)
    }
  }
  return async () => {
    if (last && performance.now() - last.atMs < HEALTH_CACHE_MS) return last.verdict
    running ??= run().then((verdict) => {
      last = { verdict, atMs: performance.now() }
      running = null
      return verdict
    })
    return running
  }
}

export const healthRoutes = (probe: StoreProbe) => {
  const verdict = cachedProbe(probe)
  return new Hono()
    .get("/api/health", async (c) => {
      const v = await verdict()
      if (v.ok) return c.json({ status: "ok", version: VERSION, store: "ok" })
      return c.json({ status: "unavailable", version: VERSION, store: v.reason }, 503)
    })
    .get("/api/health/live", (c) => c.json({ status: "ok", version: VERSION }))
}
