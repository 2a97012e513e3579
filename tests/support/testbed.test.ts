import { expect, setDefaultTimeout, test } from "bun:test"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startInProcess } from "./control-plane.ts"
import { portFree } from "./loopback.ts"
import { buildTestSystem } from "./nix-fixtures.ts"
import { createTestbed } from "./testbed.ts"
import { isHolder, readState } from "./testbed-state.ts"
import { run } from "./tools.ts"
import { waitFor } from "./wait.ts"

// bun 1.4 applies tests/preload.ts's setDefaultTimeout to the first test file only; these need real time.
setDefaultTimeout(60_000)

const ssh = (identity: string, knownHosts: string, address: string, command: string) =>
  run([
    "ssh",
    "-i",
    identity,
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    `root@${address}`,
    command,
  ])

test("20 nodes come up in parallel, each on its own loopback address, and go away whole", async () => {
  const gen1 = await buildTestSystem(1)
  // How fast they come up is the benchmark's business (scripts/bench.ts), not a test's.
  const tb = await createTestbed({ nodes: 20, boot: gen1 })
  const addresses = tb.nodes.map((n) => n.address)
  try {
    expect(new Set(addresses).size).toBe(20)
    for (const a of addresses) expect(a).toMatch(/^127\.0\.\d+\.\d+$/)
    expect(tb.nodes.map((n) => n.name)).toEqual(Array.from({ length: 20 }, (_, i) => `node-${i + 1}`))
    expect(tb.targets[0]).toBe(`root@${addresses[0]}:22`)
    // The real ssh client, host key checked, sees the node's own system links.
    const r = await ssh(tb.identityFile, tb.knownHostsFile, addresses[19] as string, "readlink /run/current-system")
    expect(r).toMatchObject({ code: 0, stdout: `${gen1}\n` })
    // The inventory carries the key and known_hosts, so the CLI needs no SSH flags for these nodes.
    const inventory = await Bun.file(tb.configFile).text()
    expect(inventory).toContain(
      `[ssh]\nidentity_file = "${tb.identityFile}"\nknown_hosts_file = "${tb.knownHostsFile}"\n`,
    )
  } finally {
    await tb.stop()
  }
  for (const n of tb.nodes) {
    expect(isHolder(n.node.pid)).toBe(false)
    expect(portFree(n.address, 22)).toBe(true)
  }
  expect(existsSync(tb.dir)).toBe(false)
})

test("two testbeds at once get different addresses", async () => {
  await using a = await createTestbed({ nodes: 3 })
  await using b = await createTestbed({ nodes: 3 })
  const overlap = a.nodes.filter((n) => b.nodes.some((m) => m.address === n.address))
  expect(overlap).toEqual([])
})

test("stopSshd refuses new connections until startSshd; the node itself lives on", async () => {
  await using tb = await createTestbed({ nodes: 1 })
  const [n] = tb.nodes
  if (!n) throw new Error("no node")
  await n.stopSshd()
  const refused = await ssh(tb.identityFile, tb.knownHostsFile, n.address, "true")
  expect(refused.code).toBe(255)
  expect(refused.stderr).toContain("Connection refused")
  expect(isHolder(n.node.pid)).toBe(true)
  await n.startSshd()
  expect((await ssh(tb.identityFile, tb.knownHostsFile, n.address, "echo back")).stdout).toBe("back\n")
})

test("scripts/testbed.ts up leaves a fleet that outlives it; status reads it; down removes it", async () => {
  const dir = join(await mkdtemp(join(tmpdir(), "chimera-testbed-script-")), "fleet")
  const script = join(import.meta.dir, "../../scripts/testbed.ts")
  try {
    const up = await run([process.execPath, script, "up", "--nodes", "2", "--dir", dir])
    expect(up.code).toBe(0)
    expect(up.stdout).toContain("2 nodes up")
    expect(up.stdout).toContain("chimera exec")
    const state = await readState(dir)
    if (!state) throw new Error("no state file")
    const [first] = state.nodes
    expect((await ssh(state.identityFile, state.knownHostsFile, first?.address as string, "echo hi")).stdout).toBe(
      "hi\n",
    )

    const status = await run([process.execPath, script, "status", "--dir", dir])
    expect(status.code).toBe(0)
    expect(status.stdout).toMatch(new RegExp(`node-1 +${first?.address} +up`))

    const down = await run([process.execPath, script, "down", "--dir", dir])
    expect(down.code).toBe(0)
    for (const n of state.nodes) expect(isHolder(n.holderPid)).toBe(false)
    expect(portFree(first?.address as string, 22)).toBe(true)
    expect(existsSync(dir)).toBe(false)
  } finally {
    const left = await readState(dir).catch(() => null)
    if (left) await run([process.execPath, script, "down", "--dir", dir])
    await rm(join(dir, ".."), { recursive: true, force: true })
  }
})

test("with a control plane and join tokens, each node runs its agent, enrolled under its name", async () => {
  const gen1 = await buildTestSystem(1)
  await using cp = await startInProcess()
  const joinTokens = await Promise.all(
    [1, 2].map(async () => {
      const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
      return ((await res.json()) as { token: string }).token
    }),
  )
  await using tb = await createTestbed({
    nodes: 2,
    boot: gen1,
    prefix: "agent",
    agent: { controlUrl: cp.url, joinTokens },
  })
  for (const n of tb.nodes) {
    await waitFor(
      `${n.name} enrolled`,
      async () => (await cp.api(`/api/nodes/${n.name}`)).status,
      (s) => s === 200,
    )
    expect(n.agent?.proc.exitCode).toBeNull()
  }
})

test("stop still ends an sshd whose node holder was killed under it (as bun test does on a time-out)", async () => {
  const tb = await createTestbed({ nodes: 1 })
  const [n] = tb.nodes
  if (!n) throw new Error("no node")
  const sshd = await n.sshd.pid()
  process.kill(n.node.pid, "SIGKILL")
  await tb.stop()
  expect(sshd).not.toBeNull()
  expect(isHolder(n.node.pid)).toBe(false)
  expect(await n.sshd.pid()).toBeNull()
  expect(portFree(n.address, 22)).toBe(true)
})
