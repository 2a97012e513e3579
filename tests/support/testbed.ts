// A fleet of test nodes reachable over real SSH, with no mock of sshd or of the nodes: N test nodes,
// each with Debian's sshd running inside its mount namespace on its own loopback address, port 22, with
// its own host key; one client key pair for root, an authorized_keys file and a known_hosts file that
// belong to the testbed alone. Tests use it with `await using`; `scripts/testbed.ts up` starts the same
// fleet detached (`detached: true`) and leaves a state file for `down` and `status`. Nodes come up in
// parallel: twenty take a few seconds, most of it `nix-env --set` when a boot system is given.

import { lstatSync } from "node:fs"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../../protocol/ids.ts"
import { type AgentProcess, startAgent } from "./agent-process.ts"
import { type AddressClaim, claimAddresses } from "./loopback.ts"
import { ed25519, prepareSshd, type Sshd } from "./sshd.ts"
import { createTestNode, type TestNode } from "./test-node.ts"
import { killNamespaces, stateFile, type TestbedState } from "./testbed-state.ts"

export interface TestbedAgentOptions {
  controlUrl: string
  /** One single-use join token per node, in node order. */
  joinTokens: string[]
  /** A compiled agent; default: agent/main.ts with this Bun. */
  binary?: string
  heartbeatSeconds?: number
  extraArgs?: string[]
  /** More arguments for one node's agent (e.g. `--no-auto-heal` on the node a test makes drift). */
  argsFor?: (name: string) => string[]
}

export interface TestbedOptions {
  nodes: number
  /** The system every node booted (profile, current and booted system). */
  boot?: StorePath
  /** Starts an agent inside each node, enrolled with its join token; the node id is the node's name. */
  agent?: TestbedAgentOptions
  /** Node names are `${prefix}-1`, `${prefix}-2`, …; default "node". */
  prefix?: string
  /** Where keys, configs and logs go; default a new temp dir, removed on dispose. */
  dir?: string
  /** For `scripts/testbed.ts up`: agents log to files, not pipes, so the fleet outlives this process. */
  detached?: boolean
}

export interface TestbedNode {
  name: string
  address: string
  port: number
  /** `root@ADDR:22`, as `--targets` takes it. */
  target: string
  /** The node's host public key line (`ssh-ed25519 AAAA…`). */
  hostKey: string
  node: TestNode
  sshd: Sshd
  agent: AgentProcess | null
  stopSshd(): Promise<void>
  startSshd(): Promise<void>
}

export interface Testbed extends AsyncDisposable {
  dir: string
  nodes: TestbedNode[]
  /** The root client key (OpenSSH format, mode 0600), authorised on every node. */
  identityFile: string
  /** Every node's host key, one `ADDR ssh-ed25519 …` line each. */
  knownHostsFile: string
  authorizedKeysFile: string
  /** A CHIMERA_CONFIG_FILE naming every node under [fleet.nodes] with the tag "testbed", and the [ssh] key and known_hosts. */
  configFile: string
  targets: string[]
  state(): TestbedState
  stop(): Promise<void>
}

const AGENT_MAIN = join(import.meta.dir, "../../agent/main.ts")

function _detachedAgent(node: TestNode, dir: string, a: TestbedAgentOptions, token: string): number {
  const cmd = a.binary ? [a.binary] : [process.execPath, AGENT_MAIN]
  const args = ["--node-id", node.name, "--control-url", a.controlUrl, "--state-dir", join(node.dir, "agent-state")]
  args.push("--heartbeat", String(a.heartbeatSeconds ?? 5), "--join-token", token, ...(a.extraArgs ?? []))
  args.push(...(a.argsFor?.(node.name) ?? []))
  const log = join(dir, `${node.name}.agent.log`)
  const proc = node.spawn(["sh", "-c", 'exec "$@" >>"$0" 2>&1', log, ...cmd, ...args], {
    stdout: "ignore",
    stderr: "ignore",
  })
  proc.unref()
  return proc.pid
}

export async function createTestbed(opts: TestbedOptions): Promise<Testbed> {
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new Error("testbed: nodes must be a whole number ≥ 1")
  if (opts.agent && opts.agent.joinTokens.length < opts.nodes)
    throw new Error(`testbed: ${opts.nodes} nodes need ${opts.nodes} join tokens, got ${opts.agent.joinTokens.length}`)
  const ownDir = opts.dir === undefined
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "chimera-testbed-")))
  await mkdir(dir, { recursive: true, mode: 0o700 })
  ownedTestbedDir(dir)
  const prefix = opts.prefix ?? "node"

  const client = ed25519(`chimera-testbed@${dir}`)
  const identityFile = join(dir, "id_ed25519")
  const authorizedKeysFile = join(dir, "authorized_keys")
  const knownHostsFile = join(dir, "known_hosts")
  const configFile = join(dir, "chimera.toml")
  // Made afresh (a file left by a crashed run is replaced, never written into with its old mode).
  const fresh = async (path: string, text: string, mode: number) => {
    await rm(path, { force: true })
    await writeFile(path, text, { mode, flag: "wx" })
  }
  await fresh(identityFile, client.privateKey, 0o600)
  await fresh(`${identityFile}.pub`, `${client.publicKey}\n`, 0o644)
  await fresh(authorizedKeysFile, `${client.publicKey}\n`, 0o600)

  const claims: AddressClaim[] = claimAddresses(opts.nodes)
  const agentPids = new Map<string, number>()
  const nodes: TestbedNode[] = []
  const made = await Promise.allSettled(
    claims.map(async (_, i) => {
      const name = `${prefix}-${i + 1}`
      const node = await createTestNode({ name, boot: opts.boot })
      try {
        // root's home is the node's own, as on a real machine: the host's ~/.bashrc (which bash reads
        // for every SSH command, and which here runs `pyenv init`) would cost each command ~80 ms.
        const home = join(dir, name, "home")
        await mkdir(home, { recursive: true, mode: 0o700 })
        const bound = await node.exec(["mount", "--bind", home, "/root"])
        if (bound.code !== 0) throw new Error(`${name}: cannot give root its own home: ${bound.stderr.trim()}`)
        const hostKey = ed25519(`${name}@chimera-testbed`)
        // Someone who does not claim addresses (an sshd started by hand) may bind port 22 between our
        // check and sshd's bind: then this node moves to another address.
        for (let attempt = 1; ; attempt++) {
          const address = (claims[i] as AddressClaim).address
          const sshd = await prepareSshd(node, {
            dir: join(dir, name),
            address,
            port: 22,
            authorizedKeysFile,
            hostKey,
            detached: opts.detached,
          })
          try {
            await sshd.start()
            return { name, node, sshd, hostKey: hostKey.publicKey, address }
          } catch (error) {
            await sshd.stop()
            if (attempt === 3) throw error
            claims[i]?.release()
            claims[i] = claimAddresses(1, new Set(claims.map((c) => c.address)))[0] as AddressClaim
          }
        }
      } catch (error) {
        await killNamespaces([node.pid])
        await node.stop()
        throw error
      }
    }),
  )
  for (const m of made) {
    if (m.status === "rejected") continue
    const { name, node, sshd, hostKey, address } = m.value
    nodes.push({
      name,
      address,
      port: 22,
      target: `root@${address}:22`,
      hostKey,
      node,
      sshd,
      agent: null,
      stopSshd: () => sshd.stop(),
      startSshd: () => sshd.start(),
    })
  }

  const stop = async () => {
    await Promise.all(nodes.map((n) => n.agent?.stop()))
    // An sshd can outlive a holder that was killed under it (bun test kills what a timed-out test
    // spawned, in any order): stop it by its pid file, then everything else still in a live namespace.
    await Promise.all(nodes.map((n) => n.sshd.stop()))
    await killNamespaces(nodes.map((n) => n.node.pid))
    await Promise.all(nodes.map((n) => n.node.stop()))
    for (const c of claims) c.release()
    if (ownDir) await rm(dir, { recursive: true, force: true })
    else await rm(stateFile(dir), { force: true })
  }
  const failed = made.find((m) => m.status === "rejected")
  if (failed) {
    await stop()
    throw (failed as PromiseRejectedResult).reason
  }

  await writeFile(knownHostsFile, nodes.map((n) => `${n.address} ${n.hostKey}\n`).join(""))
  // The [ssh] section lets the CLI (and a control plane started on this file) reach the nodes with no flags.
  const ssh = `[ssh]\nidentity_file = ${JSON.stringify(identityFile)}\nknown_hosts_file = ${JSON.stringify(knownHostsFile)}\n`
  const toml = nodes.map((n) => `[fleet.nodes.${n.name}]\naddress = "${n.target}"\ntags = ["testbed"]\n`)
  await writeFile(configFile, [ssh, ...toml].join("\n"))

  if (opts.agent) {
    const a = opts.agent
    nodes.forEach((n, i) => {
      const token = a.joinTokens[i] as string
      if (opts.detached) agentPids.set(n.name, _detachedAgent(n.node, dir, a, token))
      else
        n.agent = startAgent(n.node, {
          nodeId: n.name,
          controlUrl: a.controlUrl,
          joinToken: token,
          binary: a.binary,
          heartbeatSeconds: a.heartbeatSeconds,
          extraArgs: [...(a.extraArgs ?? []), ...(a.argsFor?.(n.name) ?? [])],
        })
    })
  }

  const state = (): TestbedState => ({
    dir,
    createdAt: new Date().toISOString(),
    identityFile,
    knownHostsFile,
    configFile,
    nodes: nodes.map((n) => ({
      name: n.name,
      address: n.address,
      port: n.port,
      target: n.target,
      holderPid: n.node.pid,
      nodeDir: n.node.dir,
      sshdPidFile: n.sshd.pidFile,
      agentPid: n.agent?.proc.pid ?? agentPids.get(n.name) ?? null,
    })),
  })
  await writeFile(stateFile(dir), JSON.stringify(state(), null, 2))

  return {
    dir,
    nodes,
    identityFile,
    knownHostsFile,
    authorizedKeysFile,
    configFile,
    targets: nodes.map((n) => n.target),
    state,
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

/**
 * The testbed's directory holds a key that is root on every node, and so on this host (a node is a
 * mount namespace): one another user made or can write to (a /tmp/chimera-testbed planted before the
 * first `up`, with files of theirs waiting in it, or a state file naming processes for `down` to kill)
 * is refused, as is a symbolic link.
 */
export function ownedTestbedDir(dir: string): void {
  const st = lstatSync(dir)
  const uid = process.getuid?.() ?? 0
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new Error(`testbed: ${dir} is not a directory of its own (a symbolic link?); remove it or pass another --dir`)
  if (st.uid !== uid)
    throw new Error(
      `testbed: ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); remove it or pass another --dir`,
    )
  if ((st.mode & 0o077) !== 0)
    throw new Error(
      `testbed: ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); files may have been put in it: remove it or pass another --dir`,
    )
}
