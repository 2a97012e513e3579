// Loopback addresses for test nodes. Each node's sshd listens on its own 127.0.0.x:22, and
// several test runs may share this machine at once, so an address is taken only when it is free twice
// over: nobody holds its claim and nobody listens on its port 22. The claim is a TCP listener on the
// address's port 1 held by this process: the kernel makes it exclusive and drops it when the process
// dies, so a crashed run leaves nothing stale behind (an sshd it leaked still holds port 22 and is
// skipped by the second check). Only 127.0.0.0/8 is ever used.
import type { TCPSocketListener } from "bun"

const CLAIM_PORT = 1
const FIRST = [127, 0, 0, 11] as const
/** How far the scan goes before giving up: 127.0.0.11 to 127.0.15.254, about 4,000 addresses. */
const LAST_THIRD_OCTET = 15

export interface AddressClaim {
  address: string
  /** Gives the address back (the sshd must be stopped first, or port 22 stays taken). */
  release(): void
}

function _listen(hostname: string, port: number): TCPSocketListener | null {
  try {
    return Bun.listen({ hostname, port, socket: { data() {}, open: (s) => void s.end() } })
  } catch {
    return null
  }
}

/** True when nothing listens on `address:port` (probed by binding it for an instant). */
export function portFree(address: string, port: number): boolean {
  const probe = _listen(address, port)
  probe?.stop(true)
  return probe !== null
}

function* _candidates(): Generator<string> {
  for (let third = FIRST[2]; third <= LAST_THIRD_OCTET; third++) {
    for (let fourth = third === FIRST[2] ? FIRST[3] : 1; fourth <= 254; fourth++) yield `127.0.${third}.${fourth}`
  }
}

/** Claims `count` free loopback addresses, lowest first (so a quiet machine gets 127.0.0.11, .12, …). */
export function claimAddresses(count: number, skip: ReadonlySet<string> = new Set()): AddressClaim[] {
  const claims: AddressClaim[] = []
  for (const address of _candidates()) {
    if (claims.length === count) break
    if (skip.has(address)) continue
    const hold = _listen(address, CLAIM_PORT)
    if (!hold) continue
    if (!portFree(address, 22)) {
      hold.stop(true)
      continue
    }
    claims.push({ address, release: () => hold.stop(true) })
  }
  if (claims.length < count) {
    for (const c of claims) c.release()
    throw new Error(
      `testbed: found only ${claims.length} free loopback addresses of the ${count} asked for (127.0.0.11-127.0.${LAST_THIRD_OCTET}.254)`,
    )
  }
  return claims
}
