// Health checks against a real HTTP server on loopback: a check that fails is retried until its
// deadline, and the caller hears of its first failure at once rather than when the deadline comes.
import { describe, expect, test } from "bun:test"
import { createSshExecutor } from "../adapters/ssh/index.ts"
import { parseTarget } from "../adapters/ssh/target.ts"
import { runHealthChecks } from "./health-check.ts"

const target = parseTarget("root@127.0.0.1:22", "web-1")
// An HTTP check is made from here; the executor is never asked to connect.
const exec = createSshExecutor()

function serve(statusOf: (request: number) => number) {
  let requests = 0
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(null, { status: statusOf(++requests) }),
  })
  return {
    url: `http://127.0.0.1:${server.port}/health`,
    /** Requests answered so far. */
    requests: () => requests,
    [Symbol.dispose]: () => server.stop(true),
  }
}

describe("runHealthChecks", () => {
  test("a check that fails at first says so once, at once, and passes when the service comes up", async () => {
    using server = serve((n) => (n < 3 ? 503 : 200))
    const heard: { failure: string; requests: number }[] = []
    const outcome = await runHealthChecks([{ kind: "http", url: server.url }], target, exec, 10_000, (failure) =>
      heard.push({ failure, requests: server.requests() }),
    )
    expect(outcome).toMatchObject({ ok: true, attempts: 3 })
    // Heard after the first answer, before any retry: at once, however slow this machine is.
    expect(heard).toEqual([{ failure: `GET ${server.url} answered 503`, requests: 1 }])
  })

  test("a check that never passes is reported before its deadline, and fails at it", async () => {
    using server = serve(() => 500)
    const heard: number[] = []
    const started = performance.now()
    const outcome = await runHealthChecks([{ kind: "http", url: server.url }], target, exec, 2_000, () =>
      heard.push(server.requests()),
    )
    expect(outcome).toMatchObject({ ok: false, detail: `GET ${server.url} answered 500` })
    expect(heard).toEqual([1])
    expect(server.requests()).toBeGreaterThan(1)
    expect(performance.now() - started).toBeGreaterThan(1_400)
  })
})
