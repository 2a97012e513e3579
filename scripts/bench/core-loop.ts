// The core loop's benchmarks: drift detected and healed on a test node (its own /run and system
// profile) running the compiled agent, event-driven against the same agent polling every second
// (--no-watch), and the agent at rest (RSS and CPU over 60 s), against a control plane in this process.
// A drift is made as an operator or a tool would make it: a runtime drift swaps /run/current-system
// atomically (as `switch-to-configuration test` would); a manual switch runs `nix-env --set` and
// `switch-to-configuration switch`; each is timed until profile and current system are `gen1` again.
import { realpathSync } from "node:fs"
import { readFile, rename, symlink } from "node:fs/promises"
import { join } from "node:path"
import { startAgent } from "../../tests/support/agent-process.ts"
import type { TestControlPlane } from "../../tests/support/control-plane.ts"
import { createTestNode, type TestNode } from "../../tests/support/test-node.ts"
import { requireTool, runOk } from "../../tests/support/tools.ts"
import { waitFor } from "../../tests/support/wait.ts"
import { f1, median, quantile } from "./common.ts"
import { cpuTicks } from "./proc-stat.ts"

/** RSS (all, anonymous, file-backed) in MB and CPU seconds so far of a process, from /proc. */
async function procStats(pid: number) {
  const [status, cpu] = await Promise.all([readFile(`/proc/${pid}/status`, "utf8"), cpuTicks(pid)])
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN)
  return {
    rssMb: kb("VmRSS") / 1024,
    anonMb: kb("RssAnon") / 1024,
    fileMb: kb("RssFile") / 1024,
    cpuSeconds: cpu.total,
  }
}

/** What the scenarios need: the compiled agent, and the two test systems (generation 1 is desired). */
export interface CoreLoopKit {
  agentBin: string
  gen1: string
  gen2: string
}

export type Drift = (node: TestNode) => Promise<number>

/** The drift scenarios and the idle agent, over one kit. */
export function coreLoopBench({ agentBin, gen1, gen2 }: CoreLoopKit) {
  const nixEnv = requireTool("nix-env")
  /** Where the node's links resolve, read from the host through the namespace's root. */
  function links(node: TestNode) {
    const read = (p: string) => {
      try {
        return realpathSync(p)
      } catch {
        return null
      }
    }
    return {
      profile: read(join(node.dir, "profiles/system")),
      current: read(`/proc/${node.pid}/root/run/current-system`),
    }
  }

  async function untilHealed(node: TestNode, t0: number, timeoutMs = 10_000): Promise<number> {
    for (;;) {
      const l = links(node)
      if (l.profile === gen1 && l.current === gen1) return performance.now() - t0
      if (performance.now() - t0 > timeoutMs) throw new Error(`not healed after ${timeoutMs} ms: ${JSON.stringify(l)}`)
      await Bun.sleep(1)
    }
  }

  async function runtimeDrift(node: TestNode): Promise<number> {
    const run = `/proc/${node.pid}/root/run`
    await symlink(gen2, `${run}/.bench-link`)
    const t0 = performance.now()
    await rename(`${run}/.bench-link`, `${run}/current-system`)
    return untilHealed(node, t0)
  }

  async function manualSwitch(node: TestNode): Promise<number> {
    const t0 = performance.now()
    const op = node.exec([
      "sh",
      "-c",
      `${nixEnv} -p /nix/var/nix/profiles/system --set ${gen2} && ${gen2}/bin/switch-to-configuration switch`,
    ])
    await op
    return untilHealed(node, t0)
  }

  async function driftScenario(cp: TestControlPlane, name: string, extraArgs: string[], drift: Drift, count: number) {
    await using node = await createTestNode({ name, boot: gen1 })
    const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    await using agent = startAgent(node, {
      nodeId: name,
      controlUrl: cp.url,
      joinToken: token,
      binary: agentBin,
      extraArgs: [...extraArgs, "--log-level", "warning"],
    })
    await waitFor(
      `${name} enrolled`,
      async () => (await cp.api(`/api/nodes/${name}`)).status,
      (s) => s === 200,
    )
    await cp.api(`/api/nodes/${name}/desired`, { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
    await waitFor(
      `${name} healthy`,
      async () => ((await (await cp.api(`/api/nodes/${name}`)).json()) as { status: string }).status,
      (s) => s === "healthy",
    )
    const samples: number[] = []
    for (let i = 0; i < count; i++) {
      samples.push(await drift(node))
      // Let the heal's reports go out, then wait a random part of a poll period so that drifts fall
      // uniformly across the poller's cycle (a fixed pause would land each drift at the same phase).
      await Bun.sleep(100 + Math.random() * 1000)
    }
    if (agent.proc.exitCode !== null) throw new Error(`agent exited: ${agent.log()}`)
    return samples
  }

  async function idleAgent(cp: TestControlPlane) {
    await using node = await createTestNode({ name: "idle", boot: gen1 })
    const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    await using agent = startAgent(node, {
      nodeId: "idle",
      controlUrl: cp.url,
      joinToken: token,
      binary: agentBin,
      heartbeatSeconds: 5,
      extraArgs: ["--log-level", "warning"],
    })
    await waitFor(
      "idle agent enrolled",
      async () => (await cp.api("/api/nodes/idle")).status,
      (s) => s === 200,
    )
    await cp.api("/api/nodes/idle/desired", { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
    await Bun.sleep(3000)
    // nsenter (mount namespace only, no --fork) execs the agent: the spawned pid is the agent's.
    const pid = agent.proc.pid
    const a = await procStats(pid)
    const t0 = performance.now()
    await Bun.sleep(60_000)
    const b = await procStats(pid)
    const wall = (performance.now() - t0) / 1000
    return { ...b, cpuPercent: ((b.cpuSeconds - a.cpuSeconds) / wall) * 100 }
  }

  return { runtimeDrift, manualSwitch, driftScenario, idleAgent }
}

/** Median wall time of `runs` runs of `cmd`, each to a clean exit. */
export async function helpTimes(cmd: string[], runs = 20) {
  const xs: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await runOk(cmd)
    xs.push(performance.now() - t0)
  }
  return median(xs)
}

export interface CoreLoopResults {
  /** Milliseconds from each drift to its heal. */
  runtime: number[]
  manual: number[]
  /** The same agent polling every second (--no-watch), runtime drifts. */
  polled: number[]
  idle: Awaited<ReturnType<ReturnType<typeof coreLoopBench>["idleAgent"]>>
  /** `chimera --help`, compiled and from source: medians in ms. */
  helpCompiled: number
  helpSource: number
}

/** The "Drift detected and healed" and "Agent and CLI" sections of BENCHMARKS.md; `measured` says when and how. */
export function coreLoopTable(
  { runtime, manual, polled, idle, helpCompiled, helpSource }: CoreLoopResults,
  measured: string,
): string {
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${f1(quantile(xs, 0.5))} | ${f1(quantile(xs, 0.99))} | ${f1(Math.max(...xs))} |`
  return [
    "### Drift detected and healed (target: p50 < 300 ms, p99 < 1 s)",
    "",
    measured,
    "",
    "| scenario | drifts | p50 ms | p99 ms | max ms |",
    "|---|---:|---:|---:|---:|",
    row("runtime drift (current-system swapped), event-driven", runtime),
    row("manual switch (nix-env --set + switch), event-driven, from the operator's first command", manual),
    row("peer: runtime drift, polling every 1 s (--no-watch)", polled),
    "",
    `Event-driven healing is **${(quantile(polled, 0.5) / quantile(runtime, 0.5)).toFixed(1)}×** faster at the median than polling every second (and polling at comin's 60 s would be ~60× slower again).`,
    "",
    "### Agent and CLI (targets: agent RSS < 50 MB, idle CPU < 0.1 %, `--help` < 100 ms)",
    "",
    "| measure | value |",
    "|---|---:|",
    `| agent RSS after 60 s idle (compiled, enrolled, heartbeat 5 s) | ${idle.rssMb.toFixed(1)} MB |`,
    `| … of which anonymous (the agent's own heap and stacks) | ${idle.anonMb.toFixed(1)} MB |`,
    `| … of which file-backed (pages of the Bun runtime binary, reclaimable) | ${idle.fileMb.toFixed(1)} MB |`,
    `| agent CPU over 60 s idle (resolution 0.017 %: 10 ms ticks over 60 s) | ${idle.cpuPercent.toFixed(3)} % |`,
    `| \`chimera --help\`, compiled, median of 20 | ${f1(helpCompiled)} ms |`,
    `| \`bun control/main.ts --help\`, median of 20 | ${f1(helpSource)} ms |`,
  ].join("\n")
}
