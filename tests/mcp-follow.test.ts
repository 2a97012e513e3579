// The MCP server tells its client when the node list changes (resources/list_changed) by following
// the control plane's event stream. A stream refused for a while (its user holds every stream the
// limit allows) must not end that for the rest of the session.
import { expect, test } from "bun:test"
import { apiCaller } from "../control/mcp/api-caller.ts"
import { followEnrolments } from "../control/mcp/server.ts"
import { enrollNode } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { waitFor } from "./support/wait.ts"

test("a stream refused with a 429 is asked for again; once back, the client hears of changes", async () => {
  await using cp = await startInProcess({ limits: { streams: { perUser: 1, total: 10 } } })
  // The user's one stream is taken, so the follower's is refused.
  const held = new AbortController()
  const res = await fetch(`${cp.url}/api/events/stream`, {
    headers: { authorization: `Bearer ${cp.adminToken}` },
    signal: held.signal,
  })
  expect(res.status).toBe(200)

  let changes = 0
  const stop = new AbortController()
  const following = followEnrolments(apiCaller(cp.url, cp.adminToken), cp.adminToken, () => changes++, stop.signal)
  try {
    // Its first ask is refused, as the audit log's row for the refusal shows (however slow the machine).
    await waitFor(
      "the follower's refusal",
      async () =>
        (
          (await (await cp.api("/api/audit?action=GET%20/api/events/stream")).json()) as {
            entries: { status: number }[]
          }
        ).entries,
      (entries) => entries.some((e) => e.status === 429),
      20_000,
    )
    held.abort()
    // Back: told that the list may have changed while it was away, then of each enrolment.
    await waitFor(
      "the follower's return",
      async () => changes,
      (n) => n >= 1,
      20_000,
    )
    const before = changes
    await enrollNode(cp, "late-1")
    await waitFor(
      "the enrolment's notice",
      async () => changes,
      (n) => n > before,
      10_000,
    )
  } finally {
    stop.abort()
    await following
  }
}, 60_000)
