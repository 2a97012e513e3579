// `chimera events --follow` against a real control plane: it starts with the last --limit events
// (not the whole history), prints events as they come (and nothing for the stream's own frames), in
// columns under a header, and when the control plane ends the stream because the token was revoked,
// it says so and exits non-zero instead of hanging or exiting 0; when the control plane restarts, it
// goes on from its last event (Last-Event-ID), missing none. An unreachable control plane gets
// the hint every command gives. `--node` with an id no node has (a typo) says so instead of printing
// an empty table. A deploy's events show under its target's node, with what happened in DETAIL.
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { freePort, spawnControlPlane, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { streamText } from "./support/stream.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/y1mlmacm344nc9ik51ajfsqv9pl6m87x-chimera-test-system-2"

async function withHome<T>(use: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), "chimera-cli-events-"))
  try {
    return await use(home)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}

const env = (home: string, url: string, token: string) => ({
  ...process.env,
  HOME: home,
  CHIMERA_URL: url,
  CHIMERA_TOKEN: token,
  CHIMERA_DATA_DIR: join(home, "data"),
})

function follow(cp: TestControlPlane, home: string, token: string, ...args: string[]) {
  const proc = Bun.spawn([process.execPath, MAIN, "events", "--follow", ...args], {
    env: env(home, cp.url, token),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  return { proc, out: streamText(proc.stdout as ReadableStream<Uint8Array>) }
}

/** `chimera events ARGS` run to its end, as the admin. */
const events = (cp: TestControlPlane, home: string, ...args: string[]) =>
  run([process.execPath, MAIN, "events", ...args], { env: env(home, cp.url, cp.adminToken) })

const desire = (cp: TestControlPlane, node: string, closure: string) =>
  cp.api(`/api/nodes/${node}/desired`, { method: "PUT", body: JSON.stringify({ closure }) })

/** Ids of the lines printed so far (JSON lines, or table rows under the header). */
const lineIds = (text: string) =>
  text
    .split("\n")
    .filter((l) => /^(\{|\d)/.test(l))
    .map((l) => (l.startsWith("{") ? (JSON.parse(l) as { id: number }).id : Number(l.split(" ")[0])))

describe("chimera events --follow", () => {
  test("prints each event as a JSON line, and exits 1 naming the reason when its token is revoked", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "web-1")
      const made = await cp.api("/api/tokens", {
        method: "POST",
        body: JSON.stringify({ name: "follower", role: "viewer" }),
      })
      const { id, token } = (await made.json()) as { id: string; token: string }
      const { proc, out } = follow(cp, home, token, "--json")
      await out.until((text) => text.includes("\n"))
      expect(JSON.parse(out.text.split("\n")[0] ?? "")).toMatchObject({ type: "node.enrolled", nodeId: "web-1" })

      expect((await cp.api(`/api/tokens/${id}`, { method: "DELETE" })).status).toBeLessThan(300)
      await desire(cp, "web-1", GEN1)
      const code = await proc.exited
      await out.until(() => false) // to the end
      const stderr = await new Response(proc.stderr).text()
      expect(code).toBe(1)
      expect(stderr).toContain("the API token is unknown or revoked; the event stream ends")
      // One line, the enrolment: no line for the stream's `ready` frame, none after the revocation.
      expect(out.text.trim().split("\n")).toHaveLength(1)
    })
  }, 30_000)

  test("--limit N starts with the last N past events, not the whole history, then prints new ones", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "web-1")
      for (const closure of [GEN1, GEN2, GEN1]) await desire(cp, "web-1", closure)
      const past = (await (await cp.api("/api/events")).json()) as { events: { id: number }[] }
      const pastIds = past.events.map((e) => e.id)
      expect(pastIds).toHaveLength(4)

      const { proc, out } = follow(cp, home, cp.adminToken, "--limit", "2", "--json")
      // Whatever comes first, it must be the last two past events: the old replay began at the first.
      await out.until((text) => lineIds(text).length >= 2)
      expect(lineIds(out.text)).toEqual(pastIds.slice(-2))
      await desire(cp, "web-1", GEN2)
      await out.until((text) => lineIds(text).length >= 3)
      proc.kill()
      await proc.exited
      const lines = out.text.trim().split("\n")
      expect(lines).toHaveLength(3)
      expect(JSON.parse(lines[2] ?? "")).toMatchObject({ type: "desired.changed", nodeId: "web-1" })
    })
  }, 30_000)

  test("rows come in the same columns as their header, whatever the lengths of their values", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "a")
      await enrollNode(cp, "a-rather-long-1")
      await desire(cp, "a", GEN1)
      const { proc, out } = follow(cp, home, cp.adminToken)
      await out.until((text) => lineIds(text).length >= 3)
      proc.kill()
      await proc.exited
      const lines = out.text.trimEnd().split("\n")
      expect(lines).toHaveLength(4)
      expect(lines[0]).toMatch(/^ID +AT +NODE +TYPE +DETAIL$/)
      // Each column starts where its header does, in every row: a value begins right there.
      const header = lines[0] ?? ""
      const columns = ["AT", "NODE", "TYPE"].map((h) => header.indexOf(h))
      const rows = lines.slice(1)
      expect(rows.map((l) => columns.map((c) => l[c - 1] === " " && l[c] !== " "))).toEqual(
        rows.map(() => [true, true, true]),
      )
      expect(rows.map((l) => l.slice(columns[1], columns[2]).trim())).toEqual(["a", "a-rather-long-1", "a"])
    })
  }, 30_000)

  test("goes on where it stopped when the control plane restarts: what happened meanwhile, once", async () => {
    await using cp = await spawnControlPlane(freePort())
    await withHome(async (home) => {
      await enrollNode(cp, "web-1")
      const { proc, out } = follow(cp, home, cp.adminToken, "--json")
      const stderr = streamText(proc.stderr as ReadableStream<Uint8Array>)
      await out.until((text) => lineIds(text).length >= 1)
      await cp.kill()
      await cp.restart()
      // Before the follower is back: the event comes from the store, after its Last-Event-ID.
      await desire(cp, "web-1", GEN1)
      await out.until((text) => lineIds(text).length >= 2)
      await desire(cp, "web-1", GEN2)
      await out.until((text) => lineIds(text).length >= 3)
      expect(proc.exitCode).toBeNull()
      proc.kill()
      await proc.exited
      const all = (await (await cp.api("/api/events")).json()) as { events: { id: number }[] }
      expect(lineIds(out.text)).toEqual(all.events.map((e) => e.id))
      await stderr.until(() => false) // to the end
      expect(stderr.text).toContain("lost the event stream; reconnecting every 2 s")
    })
  }, 60_000)

  test("an unreachable control plane gets the hint every command gives", async () => {
    await withHome(async (home) => {
      const url = `http://127.0.0.1:${freePort()}`
      const r = await run([process.execPath, MAIN, "events", "--follow"], { env: env(home, url, "chm_api_x") })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(`cannot reach the control plane at ${url}`)
      expect(r.stderr).toContain("is `chimera web` running? Set CHIMERA_URL to its address.")
    })
  }, 30_000)
})

describe("chimera events --node", () => {
  test("an id no node has is an error naming the nearest and the known nodes; a known node without events is not", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "node-2")
      await enrollNode(cp, "node-1")
      const typo = await events(cp, home, "--node", "nod-1")
      expect({ code: typo.code, stdout: typo.stdout }).toEqual({ code: 1, stdout: "" })
      expect(typo.stderr).toContain('no node "nod-1" (did you mean node-1? known: node-1, node-2)')
      const json = await events(cp, home, "--node", "nod-1", "--json")
      expect(json.code).toBe(1)

      const quiet = await events(cp, home, "--node", "node-1", "--type", "heal.failed")
      expect({ code: quiet.code, stderr: quiet.stderr }).toEqual({ code: 0, stderr: "" })
      expect(quiet.stdout).toBe("No events match.\n")
      const some = await events(cp, home, "--node", "node-1")
      expect(some.code).toBe(0)
      expect(some.stdout).toContain("node.enrolled")

      // A name no agent enrolled under but with events of its own (an SSH deploy's target files its
      // progress under it) is known: nothing of that type is not an error.
      const db = new Database(join(cp.dataDir, "chimera.db"))
      const at = new Date().toISOString()
      db.run(
        "INSERT INTO events (type, node_id, at, received_at, data) VALUES ('deployment.progress', 'web-ssh', ?, ?, ?)",
        [at, at, JSON.stringify({ deploymentId: "d-1", target: "web-ssh", phase: "copy", message: "copied" })],
      )
      db.close()
      const ssh = await events(cp, home, "--node", "web-ssh", "--type", "heal.failed")
      expect({ code: ssh.code, stderr: ssh.stderr }).toEqual({ code: 0, stderr: "" })
    })
  }, 30_000)

  test("--follow warns of an id no node has yet, and goes on to wait for its events", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "node-1")
      const { proc, out } = follow(cp, home, cp.adminToken, "--node", "node-3", "--json")
      const stderr = streamText(proc.stderr as ReadableStream<Uint8Array>)
      await stderr.until((text) => text.includes("waiting for its events"))
      expect(stderr.text).toContain('no node "node-3" (did you mean node-1? known: node-1); waiting for its events')
      await enrollNode(cp, "node-3")
      await out.until((text) => text.includes("\n"))
      proc.kill()
      await proc.exited
      expect(JSON.parse(out.text.trim())).toMatchObject({ type: "node.enrolled", nodeId: "node-3" })
    })
  }, 15_000)
})

describe("chimera events", () => {
  test("without --follow it shows the latest --limit events, oldest first; --after ID pages on from an id", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "web-1")
      for (const closure of [GEN1, GEN2, GEN1, GEN2]) await desire(cp, "web-1", closure)
      const past = (await (await cp.api("/api/events")).json()) as { events: { id: number }[] }
      const ids = past.events.map((e) => e.id)
      expect(ids).toHaveLength(5)
      const shown = async (...args: string[]) => {
        const r = await events(cp, home, ...args, "--json")
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" })
        return (JSON.parse(r.stdout) as { events: { id: number }[] }).events.map((e) => e.id)
      }
      expect(await shown("--limit", "2")).toEqual(ids.slice(-2))
      expect(await shown()).toEqual(ids)
      expect(await shown("--after", String(ids[0]), "--limit", "2")).toEqual(ids.slice(1, 3))
      const table = await events(cp, home, "--limit", "1")
      expect(table.stdout.trim().split("\n").slice(1)).toHaveLength(1)
      expect(table.stdout).toContain(`${ids.at(-1)} `)
      // A page that is not the whole log says how to see the rest, on stderr.
      expect(table.stderr).toContain("older events: --limit N (at most 1000), or --after ID")
      const page = await events(cp, home, "--after", String(ids[0]), "--limit", "2")
      expect(page.stderr).toContain(`more events: --after ${ids[2]}`)
      const whole = await events(cp, home)
      expect({ code: whole.code, stderr: whole.stderr }).toEqual({ code: 0, stderr: "" })

      const bad = await events(cp, home, "--after", "last")
      expect(bad.code).not.toBe(0)
      expect(bad.stderr).toContain("--after: expected an event id")
    })
  }, 30_000)
})

describe("chimera events for a deploy", () => {
  test("each target's progress is filed under its node, and the table says what each deploy event was", async () => {
    const closure = await buildTestSystem("events-1")
    await using cp = await startInProcess()
    await withHome(async (home) => {
      // An agent that already runs the closure: the deploy through it is over at its first look.
      const credential = await enrollNode(cp, "pull-1")
      const system = { profile: closure, current: closure, booted: closure }
      const beat = await call(cp, credential, "POST", "/api/agent/pull-1/heartbeat", {
        ...heartbeatBody("pull-1"),
        system,
        desired: closure,
      })
      expect(beat.ok).toBe(true)
      const started = await call(cp, cp.adminToken, "POST", "/api/deployments", { targets: ["pull-1"], closure })
      expect(started.status).toBe(202)
      const { id } = (await started.json()) as { id: string }
      await waitFor(
        "the deploy's end",
        async () => (await (await cp.api("/api/events?type=deployment.finished")).json()) as { events: unknown[] },
        (r) => r.events.length > 0,
      )

      const cli = (...args: string[]) => events(cp, home, ...args)
      const mine = await cli("--node", "pull-1", "--type", "deployment.progress")
      expect(mine.code).toBe(0)
      const progress = mine.stdout.split("\n").filter((l) => l.includes("deployment.progress"))
      expect(progress).toHaveLength(1)
      expect(progress[0]).toMatch(
        / pull-1 +deployment\.progress +activate: desired closure set; waiting for the agent$/,
      )

      const all = await cli("--type", "deployment.started,deployment.progress,deployment.finished")
      const hash = closure.slice(11, 23)
      const lines = all.stdout.trimEnd().split("\n").slice(1)
      expect(lines.map((l) => l.split(/ {2,}/).slice(2))).toEqual([
        ["-", "deployment.started", `${id} by bootstrap admin: ${hash} to pull-1`],
        ["pull-1", "deployment.progress", "activate: desired closure set; waiting for the agent"],
        ["-", "deployment.finished", `${id} succeeded (${hash})`],
      ])
    })
  }, 60_000)

  test("a failed heal's row keeps the error's advice at its end; a first line past 240 characters ends in an ellipsis", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      await enrollNode(cp, "node-1")
      const missing = `${GEN2} is not in the local store and \`nix-store --realise\` could not fetch it (exit 1); copy the closure to the node or add a substituter`
      const long = `activation failed: ${"x".repeat(300)}\nsecond line`
      const db = new Database(join(cp.dataDir, "chimera.db"))
      const at = new Date().toISOString()
      for (const [attempt, error] of [
        [1, missing],
        [2, long],
      ] as const)
        db.run("INSERT INTO events (type, node_id, at, received_at, data) VALUES ('heal.failed', 'node-1', ?, ?, ?)", [
          at,
          at,
          JSON.stringify({ attempt, error, desired: GEN2 }),
        ])
      db.close()
      const r = await events(cp, home, "--node", "node-1", "--type", "heal.failed")
      expect(r.code).toBe(0)
      const details = r.stdout
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/ {2,}/).slice(4).join("  "))
      expect(details).toEqual([
        `attempt 1: ${missing}`,
        `attempt 2: ${`activation failed: ${"x".repeat(300)}`.slice(0, 239)}…`,
      ])
    })
  }, 30_000)
})
