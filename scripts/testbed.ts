#!/usr/bin/env bun
// A fleet of test nodes for trying Chimera by hand, for demos and for benchmarks (DESIGN.md, "Testing
// with real parts"): each node is a private mount namespace with its own /run and system profile, and
// Debian's sshd on its own loopback address (127.0.0.11, .12, … whichever are free), port 22.
//
// usage: bun scripts/testbed.ts up [--nodes N] [--dir DIR] [--boot STORE_PATH] [--control-url URL --join-tokens T,…]
//        bun scripts/testbed.ts status [--dir DIR] [--json]
//        bun scripts/testbed.ts down [--dir DIR]
//
//   up      starts N nodes (default 3) that outlive this script, writes DIR/testbed.json, and prints the
//           targets, the root identity file, the known_hosts file and a `chimera exec` line to try
//   status  each node: address, whether its sshd is alive, the system it runs
//   down    stops every node (sshd, SSH sessions, anything else in its namespace) and removes DIR
//   --dir   where keys, configs, logs and the state live (default /tmp/chimera-testbed)
//   --boot  a system closure every node boots with (default: none; build one with nix/test-system.nix)
//   --control-url, --join-tokens   also start an agent in every node (node id = node name), enrolled with
//           one join token each (`chimera nodes join-token`); its log is DIR/<node>.agent.log
// Needs root (mount namespaces), util-linux and openssh-server; the code is tests/support/testbed.ts.
import { parseArgs } from "node:util"
import { StorePath } from "../protocol/ids.ts"
import { createTestbed } from "../tests/support/testbed.ts"
import { nodeStatus, readState, stateFile, teardownFromState } from "../tests/support/testbed-state.ts"

const USAGE =
  "usage: bun scripts/testbed.ts up|down|status [--nodes N] [--dir DIR] [--boot PATH] [--control-url URL --join-tokens T,…] [--json]"

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    nodes: { type: "string", default: "3" },
    dir: { type: "string", default: "/tmp/chimera-testbed" },
    boot: { type: "string" },
    "control-url": { type: "string" },
    "join-tokens": { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
})
const fail = (message: string): never => {
  process.stderr.write(`testbed: ${message}\n${USAGE}\n`)
  process.exit(1)
}
const action = positionals[0]
if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
if (action !== "up" && action !== "down" && action !== "status")
  fail(`expected up, down or status, got ${action ?? "nothing"}`)
const dir = values.dir
const state = await readState(dir).catch((error) => fail(`${stateFile(dir)} is unreadable: ${error}`))

if (action === "up") {
  const nodes = Number(values.nodes)
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 500) fail("--nodes: expected a whole number from 1 to 500")
  if (state) fail(`a testbed is already up in ${dir} (bun scripts/testbed.ts down --dir ${dir} first)`)
  const boot = values.boot === undefined ? undefined : StorePath.safeParse(values.boot)
  if (boot && !boot.success) fail(`--boot: ${boot.error.issues[0]?.message}`)
  const controlUrl = values["control-url"]
  const joinTokens = (values["join-tokens"] ?? "").split(",").filter((t) => t !== "")
  if ((controlUrl === undefined) !== (joinTokens.length === 0)) fail("--control-url and --join-tokens go together")
  if (controlUrl && joinTokens.length !== nodes) fail(`--join-tokens: ${nodes} nodes need ${nodes} tokens`)
  const agent = controlUrl ? { controlUrl, joinTokens } : undefined
  const t0 = performance.now()
  const tb = await createTestbed({ nodes, dir, boot: boot?.data, agent, detached: true })
  const ms = performance.now() - t0
  const first = tb.nodes[0]
  process.stdout.write(
    [
      `${nodes} node${nodes === 1 ? "" : "s"} up in ${(ms / 1000).toFixed(1)} s (state in ${stateFile(dir)})`,
      ...tb.nodes.map((n) => `  ${n.name.padEnd(8)} ${n.target}`),
      `identity     ${tb.identityFile}`,
      `known_hosts  ${tb.knownHostsFile}`,
      `inventory    ${tb.configFile}  (every node is tagged "testbed")`,
      "",
      "try:",
      `  bun run chimera exec --identity ${tb.identityFile} --known-hosts ${tb.knownHostsFile} \\`,
      `    --targets ${tb.targets.join(",")} -- readlink /run/current-system`,
      `  CHIMERA_CONFIG_FILE=${tb.configFile} bun run chimera exec -i ${tb.identityFile} --known-hosts ${tb.knownHostsFile} -t @testbed -- uname -n`,
      `  ssh -i ${tb.identityFile} -o UserKnownHostsFile=${tb.knownHostsFile} root@${first?.address}`,
      "",
    ].join("\n"),
  )
  // The nodes and their sshds are not ours to wait for: they stay up after this process exits.
  process.exit(0)
}

if (!state) fail(`no testbed in ${dir}`)
if (action === "down") {
  const s = state as NonNullable<typeof state>
  await teardownFromState(s)
  process.stdout.write(`${s.nodes.length} nodes down; removed ${dir}\n`)
  process.exit(0)
}

const rows = (state as NonNullable<typeof state>).nodes.map(nodeStatus)
if (values.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`)
else {
  process.stdout.write(`${"NODE".padEnd(10)}${"ADDRESS".padEnd(16)}${"SSHD".padEnd(6)}CURRENT SYSTEM\n`)
  for (const r of rows)
    process.stdout.write(
      `${r.name.padEnd(10)}${r.address.padEnd(16)}${(r.sshd ? "up" : r.up ? "down" : "gone").padEnd(6)}${r.current ?? "-"}\n`,
    )
}
process.exit(rows.every((r) => r.sshd) ? 0 : 1)
