// The sentence for a node id the control plane does not know, most often a typo: the nearest enrolled
// id and the known ones, so a person sees at once what they meant; or a [fleet.nodes] name whose agent
// has not enrolled yet (SSH commands reach it, the control plane does not), with how to enrol it.
// `chimera events --node`, `chimera nodes show|set-desired` and `chimera nodes run --nodes` say it the
// same way.
import { nearestName } from "../../protocol/cli-flags.ts"
import { loadConfig } from "../config.ts"
import type { apiClient } from "./client.ts"
import { call } from "./client.ts"

/** How many node names the sentence lists; a large fleet's would fill the screen. */
const KNOWN_SHOWN = 10

/** "no node "node9" (did you mean node-1? known: node-1, node-2)", from the enrolled nodes' ids. */
export async function noSuchNode(api: ReturnType<typeof apiClient>, id: string): Promise<string> {
  if (_inInventory(id))
    return `node ${JSON.stringify(id)} is in [fleet.nodes] but its agent has not enrolled: \`chimera nodes join-token --node ${id}\` prints how`
  const { nodes } = await call(api.url, api.client.api.nodes.$get())
  const ids = nodes.map((n) => n.id).sort()
  const near = nearestName(ids, id)
  const known =
    ids.length === 0
      ? "no node has enrolled yet"
      : `known: ${ids.slice(0, KNOWN_SHOWN).join(", ")}${ids.length > KNOWN_SHOWN ? ` and ${ids.length - KNOWN_SHOWN} more` : ""}`
  return `no node ${JSON.stringify(id)} (${near ? `did you mean ${near}? ` : ""}${known})`
}

/** Whether `id` names a node of the CLI's configuration; an unreadable one names none. */
function _inInventory(id: string): boolean {
  try {
    return Object.hasOwn(loadConfig().fleet.nodes, id)
  } catch {
    return false
  }
}
