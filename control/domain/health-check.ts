// Health checks after an activation: a command run on the target (exit 0 passes) or an HTTP GET
// made from here (a 2xx passes; `{host}` in the URL becomes the target's address). Each is retried
// until it passes or the deadline comes, so a service that needs a moment to start is not failed early;
// the caller hears of a check's first failure at once, so a deploy does not sit silent until then.
import type { RemoteExecutorPort, Target } from "./operation-ports.ts"

export type HealthCheck = { kind: "command"; command: string } | { kind: "http"; url: string }

export interface HealthOutcome {
  ok: boolean
  /** What the last attempt of the first failing check said, for the record. */
  detail: string
  attempts: number
}

const RETRY_MS = 500

async function once(
  check: HealthCheck,
  target: Target,
  exec: RemoteExecutorPort,
  timeoutMs: number,
): Promise<string | null> {
  if (check.kind === "command") {
    const r = await exec.exec(target, check.command, { timeoutMs })
    if (r.ok) return null
    if (r.failure) return r.failure.message
    // A check that failed in silence (`false`, `test -e …`) says only its exit status, not a dangling colon.
    const said = (r.stderr || r.stdout).trim().slice(-500)
    return `\`${check.command}\` exited ${r.exitCode}${said ? `: ${said}` : ""}`
  }
  const url = check.url.replaceAll("{host}", target.host.includes(":") ? `[${target.host}]` : target.host)
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" })
    await res.body?.cancel()
    return res.status >= 200 && res.status < 300 ? null : `GET ${url} answered ${res.status}`
  } catch (error) {
    return `GET ${url} failed: ${(error as Error).message}`
  }
}

export async function runHealthChecks(
  checks: HealthCheck[],
  target: Target,
  exec: RemoteExecutorPort,
  timeoutMs: number,
  onFirstFailure: (failure: string) => void = () => {},
): Promise<HealthOutcome> {
  const deadline = Date.now() + timeoutMs
  let attempts = 0
  for (const check of checks) {
    for (let tries = 1; ; tries++) {
      attempts++
      const left = Math.max(1000, deadline - Date.now())
      const failure = await once(check, target, exec, Math.min(left, 10_000))
      if (failure === null) break
      if (Date.now() + RETRY_MS >= deadline) return { ok: false, detail: failure, attempts }
      if (tries === 1) onFirstFailure(failure)
      await Bun.sleep(RETRY_MS)
    }
  }
  return { ok: true, detail: `${checks.length} check(s) passed`, attempts }
}
