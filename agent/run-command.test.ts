// runShell on this machine's /bin/sh: exit codes, output caps, the scratch directory, and that nothing
// of a finished command stays reachable (a pending grace timer once held every command's process,
// streams and output for a second after it ended, which a busy agent felt as tens of MB).

import { heapStats } from "bun:jsc"
import { describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { CANCEL_GRACE_MS, OUTPUT_CAP_BYTES, runShell } from "./run-command.ts"

describe("runShell", () => {
  test("answers exit code, stdout and stderr, in a fresh directory that is gone afterwards", async () => {
    const r = await runShell("pwd; echo oops >&2; exit 3", { timeoutMs: 5000 })
    expect(r).toMatchObject({ exitCode: 3, stderr: "oops\n", timedOut: false })
    const cwd = r.stdout.trim()
    expect(cwd).toMatch(/\/chimera-run-[^/]+$/)
    expect(existsSync(cwd)).toBe(false)
  })

  test("keeps the first bytes of a long output and says how much it dropped", async () => {
    const r = await runShell("head -c 300000 /dev/zero | tr '\\0' x", { timeoutMs: 10_000 })
    expect(r.exitCode).toBe(0)
    expect(r.stdout.startsWith("x".repeat(OUTPUT_CAP_BYTES))).toBe(true)
    expect(r.stdout).toContain(`[chimera: output truncated, ${300_000 - OUTPUT_CAP_BYTES} more bytes dropped]`)
  })

  // The command loop gives runShell what is left of the command's timeout after its wait in the queue,
  // a fraction of a millisecond short of it: the note says it to a tenth, as the SSH timeouts do.
  test("a timeout kills the group and says after how long, to a tenth of a second", async () => {
    const r = await runShell("sleep 5", { timeoutMs: 999.721067000064 })
    expect(r).toMatchObject({ exitCode: null, timedOut: true })
    expect(r.stderr).toBe("[chimera: timed out after 1.0 s; process group killed]")
  })

  test("a cancel sends the group SIGTERM; a shell that ignores it is SIGKILLed after the grace, its output kept", async () => {
    const polite = new AbortController()
    const t0 = performance.now()
    const stopping = runShell("echo begun; sleep 30", { timeoutMs: 20_000, cancel: polite.signal })
    await Bun.sleep(300)
    polite.abort()
    const r = await stopping
    expect(performance.now() - t0).toBeLessThan(CANCEL_GRACE_MS)
    expect(r).toMatchObject({ exitCode: null, stdout: "begun\n", cancelled: true, timedOut: false })
    expect(r.stderr).toBe("[chimera: cancelled; process group sent SIGTERM]")

    const stubborn = new AbortController()
    const t1 = performance.now()
    const held = runShell("trap '' TERM; echo holding; while :; do sleep 0.1; done", {
      timeoutMs: 20_000,
      cancel: stubborn.signal,
    })
    await Bun.sleep(300)
    stubborn.abort()
    const h = await held
    expect(performance.now() - t1).toBeGreaterThanOrEqual(CANCEL_GRACE_MS)
    expect(h).toMatchObject({ exitCode: null, stdout: "holding\n", cancelled: true, timedOut: false })
    expect(h.stderr).toContain(`then SIGKILL after ${CANCEL_GRACE_MS / 1000} s`)
  }, 15_000)

  test("a finished command leaves no process object, stream or output reachable", async () => {
    const processes = () => {
      Bun.gc(true)
      return heapStats().objectTypeCounts.Subprocess ?? 0
    }
    // Other test files in this process may hold processes of their own: count only what this adds.
    const before = processes()
    const ac = new AbortController()
    for (let round = 0; round < 3; round++)
      await Promise.all(
        Array.from({ length: 20 }, () =>
          runShell("head -c 100000 /dev/zero | tr '\\0' y", { timeoutMs: 10_000, signal: ac.signal }),
        ),
      )
    expect(processes() - before).toBeLessThanOrEqual(1)
  })
})
