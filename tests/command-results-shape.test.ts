// One command on a node reads the same whichever way it went: `chimera nodes run --json` (through the
// node's agent, the API's documented /api/fleet/run answer) and `chimera exec --json` (over SSH) name
// each node's result with the same fields (control/domain/command-results.ts). exec keeps the fields
// it printed before beside them. A real control plane, a real test node with its agent enrolled and
// its sshd on loopback; the CLI as a subprocess.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { agentTestbed } from "./support/agent-testbed.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import type { Testbed } from "./support/testbed.ts"
import { run } from "./support/tools.ts"

setDefaultTimeout(60_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const SHARED = ["node", "status", "success", "exit_code", "stdout", "stderr", "duration"]
const COMMAND = "echo out; echo err >&2; exit 3"

let cp: TestControlPlane
let bed: Testbed
let work: string

beforeAll(async () => {
  cp = await startInProcess()
  bed = await agentTestbed(cp, { nodes: 1, prefix: "shape" })
  work = await mkdtemp(join(tmpdir(), "chimera-results-shape-"))
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await cp?.stop()
  await rm(work, { recursive: true, force: true })
})

const chimera = (args: string[]) =>
  run([process.execPath, MAIN, ...args], {
    env: {
      NO_COLOR: "1",
      HOME: work,
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_CONFIG_FILE: bed.configFile,
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
    },
  })

interface Answer {
  results: Record<string, unknown>[]
  summary: Record<string, number>
  duration: number
}

test("nodes run --json and exec --json give a node's result the same fields with the same values", async () => {
  const name = bed.nodes[0]?.name as string
  const relayed = await chimera(["nodes", "run", "--nodes", name, "--json", "--", COMMAND])
  const ssh = await chimera(["exec", "--targets", name, "--json", "--", COMMAND])
  expect({ relayed: relayed.code, ssh: ssh.code }).toEqual({ relayed: 1, ssh: 1 })
  const a = JSON.parse(relayed.stdout) as Answer
  const b = JSON.parse(ssh.stdout) as Answer
  const values = (r: Record<string, unknown> | undefined) =>
    Object.fromEntries(SHARED.filter((k) => k !== "duration").map((k) => [k, r?.[k]]))
  const expected = { node: name, status: "failed", success: false, exit_code: 3, stdout: "out\n", stderr: "err\n" }
  expect(values(a.results[0])).toEqual(expected)
  expect(values(b.results[0])).toEqual(expected)
  for (const answer of [a, b]) {
    expect(typeof answer.results[0]?.duration).toBe("number")
    expect(answer.summary).toEqual({ ok: 0, failed: 1, timeout: 0, offline: 0, cancelled: 0 })
    expect(typeof answer.duration).toBe("number")
  }
  // exec's own fields, which scripts read before, are still there.
  expect(b.results[0]).toMatchObject({ target: name, ok: false, exitCode: 3 })
  expect(typeof b.results[0]?.ms).toBe("number")
})

test("a target exec cannot reach is `offline`, as a node the agents cannot reach is, with exec's reason kept", async () => {
  const r = await chimera(["exec", "--targets", "root@127.0.0.1:9", "--timeout", "5", "--json", "--", "true"])
  expect(r.code).toBe(1)
  const { results, summary } = JSON.parse(r.stdout) as Answer
  expect(results[0]).toMatchObject({
    node: "root@127.0.0.1:9",
    status: "offline",
    success: false,
    exit_code: null,
    target: "root@127.0.0.1:9",
    failure: { kind: "unreachable" },
  })
  expect(summary).toEqual({ ok: 0, failed: 0, timeout: 0, offline: 1, cancelled: 0 })
})

test("a target that never completes the SSH handshake is `offline`, not a command's `timeout`; a command cut off is `timeout`", async () => {
  // A port that takes the connection and never says a word, as a host whose sshd hangs.
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  try {
    const target = `root@127.0.0.1:${silent.port}`
    const r = await chimera(["exec", "--targets", target, "--timeout", "2", "--json", "--", "true"])
    expect(r.code).toBe(1)
    const { results, summary } = JSON.parse(r.stdout) as Answer
    expect(results[0]).toMatchObject({
      node: target,
      status: "offline",
      failure: { kind: "timeout", phase: "connect" },
    })
    expect(summary).toMatchObject({ timeout: 0, offline: 1 })
  } finally {
    silent.stop(true)
  }
  const name = bed.nodes[0]?.name as string
  const slow = await chimera(["exec", "--targets", name, "--timeout", "2", "--json", "--", "sleep 30"])
  const { results } = JSON.parse(slow.stdout) as Answer
  expect(results[0]).toMatchObject({ status: "timeout", failure: { kind: "timeout", phase: "command" } })
})
