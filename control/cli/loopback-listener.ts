// Who listens at a loopback address, from the kernel's socket tables (/proc/net/tcp and tcp6, Linux).
// The CLI sends the admin token it finds in the data dir to a loopback URL without asking; any local
// user can listen on a loopback port the control plane is not using (it is stopped, or listens on
// another address), and would be handed that token. So before sending it, the CLI checks that the
// listener runs as the user who owns the token file, as `chimera web` does.
import { readFileSync } from "node:fs"
import { isIPv4, isIPv6 } from "node:net"

export interface Listener {
  /** The local address as bound: "127.0.0.1", "0.0.0.0", "::1", "::". */
  address: string
  port: number
  uid: number
}

const LISTEN = "0A"

/** `0100007F` (little-endian words, as /proc shows them) → `127.0.0.1`; 32 hex digits → IPv6. */
function _address(hex: string): string {
  const words = hex.match(/.{8}/g) ?? []
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)))
  if (bytes.length === 4) return bytes.join(".")
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
  const full = groups.join(":")
  // The forms the rest of this file compares against.
  if (full === "0:0:0:0:0:0:0:0") return "::"
  if (full === "0:0:0:0:0:0:0:1") return "::1"
  if (full.startsWith("0:0:0:0:0:ffff:")) return bytes.slice(12).join(".")
  return full
}

/** Every listening TCP socket, or null where the tables cannot be read (not Linux, /proc hidden). */
export function tcpListeners(): Listener[] | null {
  const out: Listener[] = []
  let read = false
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string
    try {
      text = readFileSync(table, "utf8")
    } catch {
      continue
    }
    read = true
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 8 || f[3] !== LISTEN) continue
      const [addr, port] = (f[1] ?? "").split(":")
      out.push({ address: _address(addr ?? ""), port: Number.parseInt(port ?? "", 16), uid: Number(f[7]) })
    }
  }
  return read ? out : null
}

/**
 * The listeners a connection to `host:port` would reach: those bound to that address, or else those on
 * every address of its family. `host` is an IP address or localhost (both of its addresses).
 */
export function listenersFor(host: string, port: number, all: Listener[]): Listener[] {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase()
  const addresses = bare === "localhost" ? ["127.0.0.1", "::1"] : [bare]
  const found: Listener[] = []
  for (const address of addresses) {
    const exact = all.filter((l) => l.port === port && l.address === address)
    const any = isIPv4(address) ? ["0.0.0.0", "::"] : isIPv6(address) ? ["::"] : []
    found.push(...(exact.length > 0 ? exact : all.filter((l) => l.port === port && any.includes(l.address))))
  }
  return found
}
