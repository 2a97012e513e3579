// Password checks run at most two at a time; beyond MAX_WAITING waiting, more are refused at once
// instead of queueing without bound behind a flood (password-queue.test.ts checks its fairness).
import { describe, expect, test } from "bun:test"
import type { ChimeraError } from "../errors.ts"
import { createCheckQueue } from "./password-queue.ts"
import { createPasswords, hashPassword, verifyPassword } from "./passwords.ts"

describe("password checks", () => {
  test("a hash verifies its password only", async () => {
    const hash = await hashPassword("correct horse battery")
    expect(hash).toStartWith("$argon2id$")
    expect(await verifyPassword("correct horse battery", hash)).toBe(true)
    expect(await verifyPassword("wrong horse battery", hash)).toBe(false)
    expect(await verifyPassword("correct horse battery", null)).toBe(false)
  })

  test("a flood beyond the queue is refused at once with 429's code; the queued ones all finish", async () => {
    // A queue of its own, scaled down (the process's holds 256), so the test is 38 checks, not 278.
    const own = createPasswords(createCheckQueue({ parallel: 2, waiting: 16, perSource: 4 }))
    const MAX_WAITING = own.queue.limits.waiting
    const hash = await own.hash("correct horse battery")
    await own.verify("warm-up", null) // the decoy hash for unknown users is made once, first
    const extra = 20
    const results = await Promise.all(
      Array.from({ length: 2 + MAX_WAITING + extra }, (_, i) =>
        own.verify("correct horse battery", hash, { source: `address-${i}`, standing: "clean" }).then(
          (ok) => ({ ok }),
          (error: unknown) => ({ error }),
        ),
      ),
    )
    const refused = results.filter((r) => "error" in r)
    expect(refused).toHaveLength(extra)
    for (const r of refused) expect((r as { error: ChimeraError }).error.code).toBe("RESOURCE_EXHAUSTED")
    expect(results.filter((r) => "ok" in r && r.ok)).toHaveLength(2 + MAX_WAITING)
    // Once drained, checks are accepted again.
    expect(await own.verify("correct horse battery", hash, { source: "address-0", standing: "clean" })).toBe(true)
  }, 60_000)
})
