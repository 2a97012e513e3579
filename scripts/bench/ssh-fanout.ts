// The SSH fan-out benchmark: one command on 20 test nodes (tests/support/testbed.ts: real sshd per
// node, on its own loopback address) with `chimera exec` (compiled, and from source), and in the same
// run with the peers: parallel-ssh (pssh) and ansible ad hoc (-m raw, forks 20), host keys checked
// against the testbed's known_hosts by all. Rounds alternate the tools' order; every run must print
// all 20 nodes' current system to count.
import { join } from "node:path"
import { createTestbed } from "../../tests/support/testbed.ts"
import { run } from "../../tests/support/tools.ts"
import { f1, median } from "./common.ts"

const ROOT = join(import.meta.dir, "../..")

/** The Debian packages of the peers, by command; the benchmark refuses to start without them. */
export const SSH_PEERS: [tool: string, pkg: string][] = [
  ["parallel-ssh", "pssh"],
  ["ansible", "ansible"],
]

/**
 * One command on 20 testbed nodes, per tool: wall times of whole runs, tools alternating each round.
 * `cliBin` is the compiled CLI; `gen1` the closure every node boots, which each run must print 20 times.
 */
export async function sshFanout({ rounds, cliBin, gen1 }: { rounds: number; cliBin: string; gen1: string }) {
  await using tb = await createTestbed({ nodes: 20, boot: gen1 })
  const command = "uname -a; readlink /run/current-system"
  const hosts = join(tb.dir, "pssh-hosts")
  await Bun.write(hosts, tb.nodes.map((n) => `root@${n.address}:22\n`).join(""))
  const inventory = join(tb.dir, "ansible-inventory.ini")
  await Bun.write(
    inventory,
    [
      "[testbed]",
      ...tb.nodes.map((n) => n.address),
      "[testbed:vars]",
      "ansible_user=root",
      `ansible_ssh_private_key_file=${tb.identityFile}`,
      `ansible_ssh_common_args='-o UserKnownHostsFile=${tb.knownHostsFile} -o StrictHostKeyChecking=yes'`,
      "",
    ].join("\n"),
  )
  const chimeraArgs = ["exec", "--targets", tb.targets.join(","), "--identity", tb.identityFile]
  chimeraArgs.push("--known-hosts", tb.knownHostsFile, "--parallel", "20", "--", command)
  const tools: [string, string[]][] = [
    ["chimera exec (compiled)", [cliBin, ...chimeraArgs]],
    ["chimera exec (bun control/main.ts)", [process.execPath, join(ROOT, "control/main.ts"), ...chimeraArgs]],
    [
      "parallel-ssh -p 20 (pssh)",
      ["parallel-ssh", "-h", hosts, "-p", "20", "-i", "-O", `UserKnownHostsFile=${tb.knownHostsFile}`].concat([
        "-O",
        "StrictHostKeyChecking=yes",
        "-O",
        `IdentityFile=${tb.identityFile}`,
        command,
      ]),
    ],
    ["ansible all -m raw -f 20", ["ansible", "all", "-i", inventory, "-m", "raw", "-a", command, "-f", "20"]],
  ]
  const env = { ANSIBLE_HOST_KEY_CHECKING: "True", ANSIBLE_SSH_CONTROL_PATH_DIR: join(tb.dir, "ansible-cp") }
  const times = new Map<string, number[]>(tools.map(([name]) => [name, []]))
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? tools : [...tools].reverse()
    for (const [name, argv] of order) {
      const t0 = performance.now()
      const r = await run(argv, { env })
      const wall = performance.now() - t0
      const seen = (r.stdout.match(new RegExp(gen1, "g")) ?? []).length
      if (r.code !== 0 || seen !== 20)
        throw new Error(`${name} failed (exit ${r.code}, ${seen}/20 nodes answered): ${r.stderr.slice(0, 500)}`)
      times.get(name)?.push(wall)
    }
  }
  return tools.map(([name]) => ({ name, samples: times.get(name) ?? [] }))
}

export function sshTable(results: { name: string; samples: number[] }[], rounds: number): string {
  const chimera = median(results[0]?.samples ?? [])
  const peers = results.filter((r) => !r.name.startsWith("chimera"))
  const fastestPeer = Math.min(...peers.map((r) => median(r.samples)))
  return [
    `### SSH fan-out: one command on 20 test nodes (target: faster than pssh and ansible in the same run)`,
    "",
    `\`uname -a; readlink /run/current-system\` on 20 testbed nodes (real sshd each, own loopback address), ${rounds} rounds per tool, order alternating; wall time of the whole command, from process start to exit.`,
    "",
    "| tool | runs | median ms | min ms | max ms | median vs chimera (compiled) |",
    "|---|---:|---:|---:|---:|---:|",
    ...results.map(
      (r) =>
        `| ${r.name} | ${r.samples.length} | ${f1(median(r.samples))} | ${f1(Math.min(...r.samples))} | ${f1(Math.max(...r.samples))} | ${(median(r.samples) / chimera).toFixed(2)}× |`,
    ),
    "",
    `\`chimera exec\` is **${(fastestPeer / chimera).toFixed(1)}×** faster at the median than the fastest peer. All tools check host keys against the testbed's known_hosts. ansible keeps its default \`ControlPersist=60s\`, so after its first round it reuses SSH connections across runs; chimera and pssh open 20 new connections every run.`,
  ].join("\n")
}
