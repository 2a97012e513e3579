#!/usr/bin/env bun
// A fleet of test nodes for trying Chimera by hand, for demos and for benchmarks, the very nodes the
// tests use: each node is a private mount namespace with its own /run, system profile and
// /var/lib/chimera-agent, and Debian's sshd on its own loopback address (127.0.0.11, .12, … whichever
// are free), port 22. By default every node boots a small test system (nix/test-system.nix, no nixpkgs),
// and two configurations to deploy are written beside the inventory.
//
// usage: bun scripts/testbed.ts up [--nodes N] [--dir DIR] [--boot STORE_PATH | --no-boot] [--control-url URL --join-tokens T,…]
//        bun scripts/testbed.ts status [--dir DIR] [--json]
//        bun scripts/testbed.ts shell NODE [--dir DIR] [-- COMMAND…]
//        bun scripts/testbed.ts down [--dir DIR]
//
//   up      starts N nodes (default 3) that outlive this script, writes DIR/testbed.json, DIR/chimera.toml
//           (the nodes under [fleet.nodes], tagged "testbed", and the [ssh] key and known_hosts for them),
//           DIR/web-gen1.nix and DIR/web-gen2.nix (generations 1 and 2 of a test system), and prints them
//   status  each node: address, whether its sshd is alive, the system it runs
//   shell   a root shell (or COMMAND) inside NODE's namespace, with this environment: on the node's /run,
//           profile and agent state, as if logged in there
//   down    stops every node (sshd, SSH sessions, anything else in its namespace) and removes DIR
//   --dir   where keys, configs, logs and the state live (default $CHIMERA_TESTBED_DIR or /tmp/chimera-testbed)
//   --boot  a system closure every node boots with (default: web-gen1.nix's; --no-boot: none)
//   --control-url, --join-tokens   also start an agent in every node (node id = node name), enrolled with
//           one join token each, in node order (`chimera nodes join-token --node NODE`: a control plane
//           whose [fleet.nodes] names the node enrols it only so); its log is DIR/<node>.agent.log
// Needs root (mount namespaces), util-linux, nix and openssh-server; the code is tests/support/testbed.ts.
import { existsSync } from "node:fs"
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { nearestName } from "../protocol/cli-flags.ts"
import { StorePath } from "../protocol/ids.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestbed, ownedTestbedDir } from "../tests/support/testbed.ts"
import { isHolder, nodeStatus, readState, stateFile, teardownFromState } from "../tests/support/testbed-state.ts"

const USAGE =
  "usage: bun scripts/testbed.ts up|down|status|shell [NODE] [--nodes N] [--dir DIR] [--boot PATH | --no-boot] [--control-url URL --join-tokens T,…] [--json] [-- COMMAND…]"
const DEFAULT_DIR = process.env.CHIMERA_TESTBED_DIR || "/tmp/chimera-testbed"
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")
/** The test systems a testbed boots and deploys: generations of nix/test-system.nix under this tag. */
const TAG = "web"

const fail = (message: string): never => {
  process.stderr.write(`testbed: ${message}\n${USAGE}\n`)
  process.exit(1)
}
const OPTIONS = {
  nodes: { type: "string", default: "3" },
  dir: { type: "string", default: DEFAULT_DIR },
  boot: { type: "string" },
  "no-boot": { type: "boolean", default: false },
  "control-url": { type: "string" },
  "join-tokens": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const
/** parseArgs's refusal in this script's words: the flag, and the one meant when it is close to one. */
function _flagProblem(error: Error & { code?: string }): string {
  const flag = /'(-[^' ]+)/.exec(error.message)?.[1]
  if (!flag) return error.message
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const near = nearestName(
      Object.keys(OPTIONS).map((name) => `--${name}`),
      flag,
    )
    return `unknown option ${flag}${near ? ` (did you mean ${near}?)` : ""}`
  }
  if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE")
    return /argument missing/.test(error.message) ? `${flag} needs a value` : `${flag} takes no value`
  return error.message
}
const { values, positionals } = (() => {
  try {
    return parseArgs({ allowPositionals: true, options: OPTIONS })
  } catch (error) {
    return fail(_flagProblem(error as Error & { code?: string }))
  }
})()
const action = positionals[0]
if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
if (action !== "up" && action !== "down" && action !== "status" && action !== "shell")
  fail(`expected up, down, status or shell, got ${action ?? "nothing"}`)
const dir = values.dir
if (existsSync(dir)) {
  try {
    ownedTestbedDir(dir)
  } catch (error) {
    fail((error as Error).message)
  }
}
const state = await readState(dir).catch((error) => fail(`${stateFile(dir)} is unreadable: ${error}`))

if (action === "up") {
  const nodes = Number(values.nodes)
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 500) fail("--nodes: expected a whole number from 1 to 500")
  // Maybe someone else's, on a shared machine: a second one beside it is as good as taking it down.
  if (state)
    fail(
      `a testbed is already up in ${dir}: \`bun scripts/testbed.ts down --dir ${dir}\` first if it is yours, or start another with --dir DIR (or CHIMERA_TESTBED_DIR)`,
    )
  if (values.boot !== undefined && values["no-boot"]) fail("--boot and --no-boot exclude each other")
  const boot = values.boot === undefined ? undefined : StorePath.safeParse(values.boot)
  if (boot && !boot.success) fail(`--boot: ${boot.error.issues[0]?.message}`)
  const controlUrl = values["control-url"]
  const joinTokens = (values["join-tokens"] ?? "").split(",").filter((t) => t !== "")
  if ((controlUrl === undefined) !== (joinTokens.length === 0)) fail("--control-url and --join-tokens go together")
  if (controlUrl && joinTokens.length !== nodes) fail(`--join-tokens: ${nodes} nodes need ${nodes} tokens`)
  const agent = controlUrl ? { controlUrl, joinTokens } : undefined
  const t0 = performance.now()
  // Generation 1 is what the nodes boot; generation 2 is there to deploy. Nix builds each once.
  const systems = await Promise.all([1, 2].map((g) => buildTestSystem(g, { tag: TAG })))
  const configs = await Promise.all(
    [1, 2].map(async (g) => {
      const path = join(dir, `${TAG}-gen${g}.nix`)
      return { path, text: `import ${TEST_SYSTEM} { generation = "${g}"; tag = "${TAG}"; }\n` }
    }),
  )
  const booted = values["no-boot"] ? undefined : (boot?.data ?? systems[0])
  const tb = await createTestbed({ nodes, dir, boot: booted, agent, detached: true })
  for (const c of configs) await writeFile(c.path, c.text)
  const ms = performance.now() - t0
  const first = tb.nodes[0]?.name ?? "node-1"
  process.stdout.write(
    [
      `${nodes} node${nodes === 1 ? "" : "s"} up in ${(ms / 1000).toFixed(1)} s, ${booted ? `booted into ${booted}` : "booted into nothing (--no-boot)"}`,
      ...tb.nodes.map((n) => `  ${n.name.padEnd(8)} ${n.target}`),
      `inventory    ${tb.configFile} (the nodes, tagged "testbed"; [ssh] with the key and known_hosts below)`,
      `configs      ${configs.map((c) => c.path).join(", ")} (generations 1 and 2 of a test system)`,
      `identity     ${tb.identityFile}`,
      `known_hosts  ${tb.knownHostsFile}`,
      `state        ${stateFile(dir)}`,
      "",
      "next:",
      `  export CHIMERA_CONFIG_FILE=${tb.configFile}`,
      // Once a control plane has run here (its admin token is in the data dir), exec, deploy and the
      // rest report to it, and exit 1 when it is not up: start it before them.
      "  chimera web &                      # the control plane: exec, deploy and the rest report to it",
      "  chimera exec --targets @testbed -- readlink /run/current-system",
      `  bun scripts/testbed.ts shell ${first}${dir === DEFAULT_DIR ? "" : ` --dir ${dir}`}    # a root shell on ${first}`,
      "",
    ].join("\n"),
  )
  // The nodes and their sshds are not ours to wait for: they stay up after this process exits.
  process.exit(0)
}

if (!state) fail(`no testbed in ${dir}`)
if (action === "shell") {
  const name = positionals[1]
  const node = (state as NonNullable<typeof state>).nodes.find((n) => n.name === name)
  if (!node)
    fail(`shell: expected a node name (${state?.nodes.map((n) => n.name).join(", ")}), got ${name ?? "nothing"}`)
  const n = node as NonNullable<typeof node>
  if (!isHolder(n.holderPid)) fail(`${n.name} is down (its namespace is gone); bring the testbed up again`)
  // bash without rc files: the host's would set another prompt, and this one says where you are.
  const command = positionals.slice(2)
  const proc = Bun.spawn(
    ["nsenter", "-t", String(n.holderPid), "-m", "--", ...(command.length ? command : ["bash", "--norc"])],
    {
      env: { ...process.env, PS1: `${n.name}# ` },
      stdio: ["inherit", "inherit", "inherit"],
    },
  )
  process.exit(await proc.exited)
}
if (action === "down") {
  const s = state as NonNullable<typeof state>
  await teardownFromState(s)
  process.stdout.write(`${s.nodes.length} ${s.nodes.length === 1 ? "node" : "nodes"} down; removed ${dir}\n`)
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
