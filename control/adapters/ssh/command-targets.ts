// The command API's view of the fleet (control/domain/command-service.ts): the nodes named in
// [fleet.nodes], each resolved to its SSH target, and one pooled executor with the control plane's
// own key and known_hosts ([ssh] section). Only named nodes: the API never dials an address a caller
// supplies.
import type { ChimeraConfig } from "../../config-schema.ts"
import type { CommandTargets } from "../../domain/command-service.ts"
import type { Target } from "../../domain/operation-ports.ts"
import { createSshExecutor } from "./executor.ts"
import { type Inventory, inventoryFromConfig } from "./inventory.ts"
import type { SshExecutorOptions } from "./options.ts"
import { parseTarget } from "./target.ts"

/**
 * Output the control plane keeps of each stream of a command it runs (the command API, deploys'
 * checks): an answer carries it JSON-escaped (a NUL is six characters) and is scanned for secrets, so
 * 16 MiB of `head -c 16000000 /dev/zero`, a low-risk command any operator may run, was a 96 MB answer
 * and 2.4 GB of the control plane's memory for one request. The relay keeps 64 KiB a node.
 */
export const API_OUTPUT_BYTES = 1024 * 1024

export function commandTargets(inventory: Inventory, options: SshExecutorOptions): CommandTargets {
  const byName = new Map<string, Target>(inventory.nodes.map((n) => [n.name, parseTarget(n.address, n.name)]))
  return {
    resolve: (name) => byName.get(name) ?? null,
    resolveAll: (spec) =>
      spec.startsWith("@")
        ? inventory.nodes
            .filter((n) => spec === "@all" || n.tags.includes(spec.slice(1)))
            .map((n) => byName.get(n.name) as Target)
        : [byName.get(spec)].filter((t) => t !== undefined),
    names: () => [...byName.keys()],
    executor: createSshExecutor({ maxOutputBytes: API_OUTPUT_BYTES, ...options }),
  }
}

/** The command targets a configuration describes, or null when it names no nodes. */
export function commandTargetsFromConfig(config: Pick<ChimeraConfig, "fleet" | "ssh">): CommandTargets | null {
  const inventory = inventoryFromConfig(config)
  if (inventory.nodes.length === 0) return null
  return commandTargets(inventory, {
    identity: config.ssh.identity_file || undefined,
    knownHosts: config.ssh.known_hosts_file || undefined,
    trustNewHosts: config.ssh.trust_new_hosts,
  })
}
