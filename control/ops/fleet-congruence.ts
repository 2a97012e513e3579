// Which targets run a closure, for every door (API, MCP, the dashboard, the AI chat): an enrolled node
// by what its agent reports, with no SSH at all; any other target over SSH with the control plane's own
// key, and only the nodes its configuration names ([fleet.nodes], by name or @tag). The closure to
// compare with is the one given (built from a Nix file, or named), else each node's desired one.
import { existsSync } from "node:fs"
import { hashOf, type StorePath } from "../../protocol/ids.ts"
import type { CommandTargets } from "../domain/command-service.ts"
import { checkCongruence } from "../domain/congruence.ts"
import { invalid, notFound } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import { deriveStatus } from "../domain/node.ts"
import type { NixPort, Target } from "../domain/operation-ports.ts"

export type CongruenceRow = {
  target: string
  via: "agent" | "ssh"
  status: "congruent" | "drifted" | "unreachable" | "unknown"
  kinds?: string[]
  current?: string | null
  profile?: string | null
  error?: string
}

export interface CongruenceRequest {
  targets: string[]
  configPath?: string
  closure?: StorePath
}

/** The closure a deploy or congruence check is about: built from a Nix file, or named directly. */
export async function closureOf(nix: NixPort, req: { configPath?: string; closure?: StorePath }) {
  if (req.closure) {
    if (!existsSync(req.closure)) throw notFound(`closure ${req.closure} (not in the control plane's Nix store)`)
    return {
      outPath: req.closure,
      hash: hashOf(req.closure),
      isSystem: existsSync(`${req.closure}/bin/switch-to-configuration`),
    }
  }
  if (!req.configPath) throw invalid("give config_path (a Nix file to build) or closure (a store path)")
  return nix.build(req.configPath)
}

/** The [fleet.nodes] targets `specs` name (names or @tags), each once; an unknown one lists the known. */
export function sshTargetsOf(targets: CommandTargets | null, specs: string[]): Target[] {
  if (!targets)
    throw invalid(
      "this control plane reaches no nodes over SSH: name them under [fleet.nodes] and set [ssh] identity_file and known_hosts_file in its configuration",
    )
  const out: Target[] = []
  for (const spec of specs) {
    const found = targets.resolveAll(spec)
    if (found.length === 0)
      throw invalid(`unknown target ${JSON.stringify(spec)}; known: ${targets.names().join(", ") || "(none)"}`)
    for (const t of found) if (!out.some((o) => o.name === t.name)) out.push(t)
  }
  return out
}

/** An enrolled node's row, from what its agent last reported. */
function agentRow(spec: string, node: NonNullable<Awaited<ReturnType<Fleet["findNode"]>>>, expected: string | null) {
  const want = expected ?? node.desiredPath
  const status = deriveStatus(node)
  if (status === "unreachable")
    return { target: spec, via: "agent", status, current: node.currentPath, profile: node.profilePath } as const
  if (!want)
    return {
      target: spec,
      via: "agent",
      status: "unknown",
      error: "no closure to compare with: give config_path or set a desired closure",
    } as const
  const kinds = [
    ...(node.profilePath !== want ? ["profile-drift"] : []),
    ...(node.currentPath !== want ? ["runtime-drift"] : []),
  ]
  return {
    target: spec,
    via: "agent",
    status: kinds.length ? "drifted" : "congruent",
    ...(kinds.length ? { kinds } : {}),
    current: node.currentPath,
    profile: node.profilePath,
  } as const
}

export async function congruenceOf(
  deps: { fleet: Fleet; nix: NixPort; targets: CommandTargets | null },
  req: CongruenceRequest,
): Promise<{ expected: string | null; targets: CongruenceRow[] }> {
  const expected = req.configPath || req.closure ? (await closureOf(deps.nix, req)).outPath : null
  const rows: CongruenceRow[] = []
  const overSsh: string[] = []
  for (const spec of req.targets) {
    const node = await deps.fleet.findNode(spec)
    if (node) rows.push(agentRow(spec, node, expected))
    else overSsh.push(spec)
  }
  if (overSsh.length > 0) {
    if (!expected)
      throw invalid(`${overSsh.join(", ")}: not enrolled nodes; give config_path or closure to check them over SSH`)
    const executor = deps.targets?.executor
    if (!executor)
      throw invalid(`${overSsh.join(", ")}: not enrolled nodes, and this control plane reaches none over SSH`)
    for (const c of await checkCongruence(executor, sshTargetsOf(deps.targets, overSsh), expected))
      rows.push(
        c.status === "unreachable"
          ? { target: c.target.name, via: "ssh", status: c.status, error: c.error }
          : {
              target: c.target.name,
              via: "ssh",
              status: c.status,
              ...(c.status === "drifted" ? { kinds: c.kinds } : {}),
              current: c.state.current,
              profile: c.state.profile,
            },
      )
  }
  return { expected, targets: rows }
}
