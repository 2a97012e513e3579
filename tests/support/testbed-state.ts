// What a testbed leaves on disk so that another process can find it again: `scripts/testbed.ts up`
// starts a fleet and exits, and `down` and `status` run later with nothing but the state file. Both the
// in-process testbed and `down` tear a node down the same way: every process in the node's mount
// namespace (its sshd, SSH sessions, agents, timers a deploy left behind) is killed, then the holder.
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs"
import { rm } from "node:fs/promises"
import { dirname, join } from "node:path"
import { z } from "zod"
import { alive, stopSshd } from "./sshd.ts"

export const TestbedNodeState = z.object({
  name: z.string(),
  address: z.string(),
  port: z.number(),
  target: z.string(),
  holderPid: z.number(),
  nodeDir: z.string(),
  sshdPidFile: z.string(),
  agentPid: z.number().nullable(),
})
export type TestbedNodeState = z.infer<typeof TestbedNodeState>

export const TestbedState = z.object({
  dir: z.string(),
  createdAt: z.string(),
  identityFile: z.string(),
  knownHostsFile: z.string(),
  configFile: z.string(),
  nodes: z.array(TestbedNodeState),
})
export type TestbedState = z.infer<typeof TestbedState>

export const stateFile = (dir: string) => join(dir, "testbed.json")

export async function readState(dir: string): Promise<TestbedState | null> {
  const text = await Bun.file(stateFile(dir))
    .text()
    .catch(() => null)
  return text === null ? null : TestbedState.parse(JSON.parse(text))
}

const _mntNs = (pid: number | string) => {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`)
  } catch {
    return null
  }
}

/** True when `pid` is still a test node's holder (and not a stranger that got its pid later). */
export function isHolder(pid: number): boolean {
  try {
    return alive(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("sleep\u00002147483647")
  } catch {
    return false
  }
}

/** SIGKILLs every process that shares a mount namespace with one of `holders`, holders last. */
export async function killNamespaces(holders: number[]): Promise<void> {
  const live = holders.filter(isHolder)
  const namespaces = new Set(live.map(_mntNs).filter((ns): ns is string => ns !== null))
  if (namespaces.size === 0) return
  // The host's own namespace can never be in the set: a holder always has a private one.
  const own = _mntNs("self")
  if (own) namespaces.delete(own)
  const members = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => !live.includes(pid) && namespaces.has(_mntNs(pid) ?? ""))
  for (const pid of [...members, ...live]) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 200 && [...members, ...live].some(alive); i++) await Bun.sleep(5)
}

/** `down` for a fleet this process did not start. */
export async function teardownFromState(state: TestbedState): Promise<void> {
  // By pid file first: an sshd outlives its node's holder if the holder was killed by hand.
  await Promise.all(state.nodes.map((n) => stopSshd(n.sshdPidFile, join(dirname(n.sshdPidFile), "sshd_config"))))
  await killNamespaces(state.nodes.map((n) => n.holderPid))
  await Promise.all(state.nodes.map((n) => rm(n.nodeDir, { recursive: true, force: true })))
  await rm(state.dir, { recursive: true, force: true })
}

export interface NodeStatus {
  name: string
  address: string
  up: boolean
  sshd: boolean
  current: string | null
}

export function nodeStatus(n: TestbedNodeState): NodeStatus {
  const up = isHolder(n.holderPid)
  const pid = Number.parseInt(
    (() => {
      try {
        return readFileSync(n.sshdPidFile, "utf8")
      } catch {
        return ""
      }
    })(),
    10,
  )
  let current: string | null = null
  try {
    // The node's /run, seen from the host through its holder's root.
    if (up) current = realpathSync(`/proc/${n.holderPid}/root/run/current-system`)
  } catch {
    current = null
  }
  return { name: n.name, address: n.address, up, sshd: up && Number.isInteger(pid) && alive(pid), current }
}
