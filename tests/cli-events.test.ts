// `chimera events --follow` against a real control plane: it prints events as they come (and
// nothing for the stream's own frames), and when the control plane ends the stream because the
// token was revoked, it says so and exits non-zero instead of hanging or exiting 0.
import { describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { enrollNode } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { streamText } from "./support/stream.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

describe("chimera events --follow", () => {
  test("prints each event as a JSON line, and exits 1 naming the reason when its token is revoked", async () => {
    await using cp = await startInProcess()
    const home = await mkdtemp(join(tmpdir(), "chimera-cli-events-"))
    try {
      await enrollNode(cp, "web-1")
      const made = await cp.api("/api/tokens", {
        method: "POST",
        body: JSON.stringify({ name: "follower", role: "viewer" }),
      })
      const { id, token } = (await made.json()) as { id: string; token: string }
      const proc = Bun.spawn([process.execPath, MAIN, "events", "--follow", "--json"], {
        env: {
          ...process.env,
          HOME: home,
          CHIMERA_URL: cp.url,
          CHIMERA_TOKEN: token,
          CHIMERA_DATA_DIR: join(home, "data"),
        },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      })
      const out = streamText(proc.stdout as ReadableStream<Uint8Array>)
      await out.until((text) => text.includes("\n"))
      expect(JSON.parse(out.text.split("\n")[0] ?? "")).toMatchObject({ type: "node.enrolled", nodeId: "web-1" })

      expect((await cp.api(`/api/tokens/${id}`, { method: "DELETE" })).status).toBeLessThan(300)
      await cp.api("/api/nodes/web-1/desired", { method: "PUT", body: JSON.stringify({ closure: GEN1 }) })
      const code = await proc.exited
      await out.until(() => false) // to the end
      const stderr = await new Response(proc.stderr).text()
      expect(code).toBe(1)
      expect(stderr).toContain("the API token is unknown or revoked; the event stream ends")
      // One line, the enrolment: no line for the stream's `ready` frame, none after the revocation.
      expect(out.text.trim().split("\n")).toHaveLength(1)
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 30_000)
})
