// The fleet as SSH sees it: the configuration's `fleet.targets` (plain target strings) plus named nodes from
// `[fleet.nodes.<name>]` tables (`address = "root@10.0.0.1:22"`, `tags = ["web"]`), so operators can
// write `--targets web-1,@db` instead of addresses. The config is parsed and checked by control/config.ts;
// this only reshapes it, and checks every address once so a typo in the file fails with its node's name.
import type { ChimeraConfig } from "../../config-schema.ts"
import { parseTarget, TargetError } from "./target.ts"

export interface InventoryNode {
  name: string
  /** `[user@]host[:port]`. */
  address: string
  tags: string[]
}

export interface Inventory {
  nodes: InventoryNode[]
  /** `fleet.targets`: reachable by `@all`, and the default when no `--targets` is given. */
  targets: string[]
}

export const emptyInventory: Inventory = { nodes: [], targets: [] }

export function inventoryFromConfig(config: Pick<ChimeraConfig, "fleet">): Inventory {
  const nodes = Object.entries(config.fleet.nodes).map(([name, node]) => ({
    name,
    address: node.address,
    tags: node.tags,
  }))
  for (const node of nodes) {
    try {
      parseTarget(node.address, node.name)
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      throw new TargetError(`config: fleet.nodes.${node.name}.address: ${reason}`)
    }
  }
  return { nodes, targets: [...config.fleet.targets] }
}
