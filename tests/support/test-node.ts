// A test node, so tests run real Nix and the real agent rather than mocks: a private mount namespace
// with its own tmpfs on /run and its own directories bind-mounted over /nix/var/nix/profiles and
// /var/lib/chimera-agent, sharing the host's /nix/store.
// Inside it the NixOS default paths (/nix/var/nix/profiles/system, /run/current-system,
// /run/booted-system) belong to this node alone, so the agent and the deploy code run with their real
// defaults. A holder process (`sleep`) keeps the namespace alive; everything else enters it with nsenter.
import { mkdir, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import type { StorePath } from "../../protocol/ids.ts"
import { type Run, requireTool, run } from "./tools.ts"
import { waitFor } from "./wait.ts"

export const SYSTEM_PROFILE = "/nix/var/nix/profiles/system"
export const CURRENT_SYSTEM = "/run/current-system"
export const BOOTED_SYSTEM = "/run/booted-system"
/** The agent's default --state-dir: each node has its own, so an agent started with defaults stays on it. */
export const AGENT_STATE = "/var/lib/chimera-agent"

export interface NodeLinks {
  profile: string | null
  current: string | null
  booted: string | null
}

export interface TestNode extends AsyncDisposable {
  readonly name: string
  /** A host directory private to this node (its profiles live in `dir/profiles`). */
  readonly dir: string
  /** PID of the process that holds the namespace open. */
  readonly pid: number
  /** Runs a command inside the node's mount namespace. */
  exec(cmd: string[], opts?: { env?: Record<string, string | undefined> }): Promise<Run>
  /** Starts a long-running process inside the node's mount namespace. */
  spawn(
    cmd: string[],
    opts?: {
      env?: Record<string, string | undefined>
      stdout?: "pipe" | "inherit" | "ignore"
      stderr?: "pipe" | "inherit" | "ignore"
    },
  ): Subprocess<"ignore", "pipe" | "inherit" | "ignore", "pipe" | "inherit" | "ignore">
  /** The store paths the node's three system links resolve to. */
  links(): Promise<NodeLinks>
  /** What an operator does by hand: set the system profile to `closure` and switch to it. */
  switchTo(closure: StorePath, action?: "switch" | "test"): Promise<void>
  stop(): Promise<void>
}

export interface TestNodeOptions {
  name?: string
  /** The system the node "booted": set as profile, current and booted system before the test starts. */
  boot?: StorePath
}

const NIX_ENV = { NIX_CONFIG: `${process.env.NIX_CONFIG ?? ""}\nsubstituters =\n` }

export async function createTestNode(opts: TestNodeOptions = {}): Promise<TestNode> {
  const unshare = requireTool("unshare")
  const nsenter = requireTool("nsenter")
  const nixEnv = requireTool("nix-env")
  const name = opts.name ?? "node"
  const dir = await mkdtemp(join(tmpdir(), `chimera-${name}-`))
  await mkdir(join(dir, "profiles"), { recursive: true })
  await mkdir(join(dir, "agent-state-default"), { recursive: true, mode: 0o700 })
  const ready = join(dir, "ready")
  const holder = Bun.spawn(
    [
      unshare,
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t tmpfs -o mode=755 tmpfs /run && mount --bind "$1/profiles" /nix/var/nix/profiles && mkdir -p -m 700 ${AGENT_STATE} && mount --bind "$1/agent-state-default" ${AGENT_STATE} && : > "$1/ready" && exec sleep 2147483647`,
      "sh",
      dir,
    ],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  )
  for (let i = 0; !(await Bun.file(ready).exists()); i++) {
    if (holder.exitCode !== null || i > 500) {
      const stderr = holder.stderr ? await new Response(holder.stderr).text() : ""
      holder.kill()
      await rm(dir, { recursive: true, force: true })
      throw new Error(`could not create test node ${name} (unshare -m needs root or CAP_SYS_ADMIN): ${stderr.trim()}`)
    }
    await Bun.sleep(10)
  }

  const enter = (cmd: string[]) => [nsenter, "-t", String(holder.pid), "-m", "--", ...cmd]
  const node: TestNode = {
    name,
    dir,
    pid: holder.pid,
    exec: (cmd, o = {}) => run(enter(cmd), { env: { ...NIX_ENV, ...o.env } }),
    spawn: (cmd, o = {}) =>
      Bun.spawn(enter(cmd), {
        env: { ...process.env, ...NIX_ENV, ...o.env },
        stdin: "ignore",
        stdout: o.stdout ?? "pipe",
        stderr: o.stderr ?? "pipe",
      }),
    async links() {
      const out = await run(enter(["readlink", "-e", SYSTEM_PROFILE, CURRENT_SYSTEM, BOOTED_SYSTEM]))
      // readlink -e prints nothing for a missing link, so resolve each on its own.
      if (out.code === 0) {
        const [profile, current, booted] = out.stdout.trim().split("\n")
        return { profile: profile ?? null, current: current ?? null, booted: booted ?? null }
      }
      const one = async (p: string) => {
        const r = await run(enter(["readlink", "-e", p]))
        return r.code === 0 ? r.stdout.trim() : null
      }
      return {
        profile: await one(SYSTEM_PROFILE),
        current: await one(CURRENT_SYSTEM),
        booted: await one(BOOTED_SYSTEM),
      }
    },
    async switchTo(closure, action = "switch") {
      // One shell for both steps, as `nixos-rebuild` runs them: two nsenter round trips left tens of
      // milliseconds between the links, in which an agent saw (and healed) a half-made switch.
      const r = await node.exec([
        "/bin/sh",
        "-c",
        `"$1" -p "$2" --set "$3" || exit 90; exec "$3/bin/switch-to-configuration" "$4"`,
        "sh",
        nixEnv,
        SYSTEM_PROFILE,
        closure,
        action,
      ])
      if (r.code === 90) throw new Error(`nix-env --set ${closure} on ${name} failed: ${r.stderr}`)
      if (r.code !== 0) throw new Error(`switch-to-configuration ${action} on ${name} failed: ${r.stderr}`)
    },
    async stop() {
      if (holder.exitCode === null) {
        holder.kill("SIGKILL")
        await holder.exited
      }
      await rm(dir, { recursive: true, force: true })
    },
    async [Symbol.asyncDispose]() {
      await node.stop()
    },
  }

  if (opts.boot) {
    await node.switchTo(opts.boot)
    const booted = await node.exec(["ln", "-sfn", opts.boot, BOOTED_SYSTEM])
    if (booted.code !== 0) throw new Error(`could not set ${BOOTED_SYSTEM} on ${name}: ${booted.stderr}`)
  }
  return node
}

/**
 * Waits until `node`'s system profile and running system are both `closure`: a heal, a rollback or a
 * deploy done. `what` names the wait in the failure, which shows the links last seen.
 */
export const waitForSystem = (node: Pick<TestNode, "links">, closure: string, what: string, timeoutMs: number) =>
  waitFor(
    what,
    () => node.links(),
    (l) => l.profile === closure && l.current === closure,
    timeoutMs,
  )
