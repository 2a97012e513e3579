// Target strings, as `--targets` and the configuration's `fleet.targets` spell them: `[user@]host[:port]`
// (user root and port 22 by default, unless ~/.ssh/config names others for the host: see ssh-config.ts;
// an IPv6 address in brackets when a port follows), a node name from
// the inventory, or `@tag` for every inventory node with that tag (`@all` for all of them). A list is
// comma-separated; the same destination named twice is contacted once, under the name it had first.
// Anything malformed is refused here, with the offending entry, before a single connection is made.
import { isIPv6 } from "node:net"
import type { Target } from "../../domain/operation-ports.ts"
import type { Inventory } from "./inventory.ts"

export class TargetError extends Error {
  override readonly name = "TargetError"
  readonly code = "E_TARGET"
}

const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

function _port(text: string, entry: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
  if (!(port >= 1 && port <= 65535))
    throw new TargetError(`target "${entry}": port must be a number from 1 to 65535, got "${text}"`)
  return port
}

/** Parses one `[user@]host[:port]`; `name` is how the target is shown (default: the entry itself). */
export function parseTarget(entry: string, name = entry): Target {
  const text = entry.trim()
  if (text === "") throw new TargetError("target: empty entry")
  const at = text.lastIndexOf("@")
  const user = at >= 0 ? text.slice(0, at) : "root"
  const rest = at >= 0 ? text.slice(at + 1) : text
  if (!USER.test(user)) throw new TargetError(`target "${entry}": "${user}" is not a valid user name`)

  let host: string
  let port = 22
  let portGiven = false
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]")
    if (close < 0) throw new TargetError(`target "${entry}": "[" without a closing "]"`)
    host = rest.slice(1, close)
    const after = rest.slice(close + 1)
    if (after !== "" && !after.startsWith(":"))
      throw new TargetError(`target "${entry}": expected ":port" after "]", got "${after}"`)
    if (after !== "") port = _port(after.slice(1), entry)
    portGiven = after !== ""
    if (!isIPv6(host) && !HOSTNAME.test(host))
      throw new TargetError(`target "${entry}": "${host}" is not an IPv6 address or host name`)
  } else if (isIPv6(rest)) {
    // A bare IPv6 address has colons of its own, so it cannot carry a port: write [::1]:2222 for that.
    host = rest
  } else {
    const colon = rest.lastIndexOf(":")
    host = colon >= 0 ? rest.slice(0, colon) : rest
    if (colon >= 0) port = _port(rest.slice(colon + 1), entry)
    portGiven = colon >= 0
    if (!HOSTNAME.test(host))
      throw new TargetError(
        `target "${entry}": "${host}" is not a host name, IPv4 address, [IPv6] address, node name or @tag`,
      )
  }
  const defaulted = { user: at < 0, port: !portGiven }
  return {
    name: name.trim(),
    user,
    host: host.toLowerCase(),
    port,
    ...(defaulted.user || defaulted.port ? { defaulted } : {}),
  }
}

/** `user@host:port` with IPv6 in brackets: the one spelling used to dedupe and to show. */
export function targetKey(t: Pick<Target, "user" | "host" | "port">): string {
  return `${t.user}@${isIPv6(t.host) ? `[${t.host}]` : t.host}:${t.port}`
}

function _expand(entry: string, inventory: Inventory): Target[] {
  if (entry.startsWith("@")) {
    const tag = entry.slice(1)
    if (tag === "all") {
      // Nothing configured (or no configuration loaded): a deploy "to everything" that reached nothing
      // must not end in success.
      if (inventory.nodes.length === 0 && inventory.targets.length === 0)
        throw new TargetError(
          `target "@all": the inventory has no nodes ([fleet.nodes.NAME] in the config) and no fleet.targets`,
        )
      const all = [...inventory.nodes.map((n) => parseTarget(n.address, n.name))]
      return [...all, ...inventory.targets.map((t) => parseTarget(t))]
    }
    const tagged = inventory.nodes.filter((n) => n.tags.includes(tag))
    if (tagged.length === 0) {
      const tags = [...new Set(inventory.nodes.flatMap((n) => n.tags))].sort()
      throw new TargetError(
        `target "${entry}": no node in the inventory has tag "${tag}"${tags.length ? ` (tags: ${tags.join(", ")})` : " (no node has tags; see [fleet.nodes.NAME] in the config)"}`,
      )
    }
    return tagged.map((n) => parseTarget(n.address, n.name))
  }
  const node = inventory.nodes.find((n) => n.name === entry)
  if (node) return [parseTarget(node.address, node.name)]
  return [parseTarget(entry)]
}

/** Resolves a comma-separated list (or several) into distinct targets, in the order first named. */
export function resolveTargets(spec: string | string[], inventory: Inventory): Target[] {
  const entries = (Array.isArray(spec) ? spec : [spec])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "")
  if (entries.length === 0) throw new TargetError("targets: none given (e.g. --targets root@10.0.0.1,web-2,@db)")
  const seen = new Set<string>()
  const out: Target[] = []
  for (const entry of entries) {
    for (const target of _expand(entry, inventory)) {
      const key = targetKey(target)
      if (seen.has(key)) continue
      seen.add(key)
      out.push(target)
    }
  }
  return out
}
