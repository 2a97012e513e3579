// Passwords: argon2id through Bun.password, with OWASP's minimum parameters (19 MiB, 2 passes), which
// keep a login near 30 ms here while costing an attacker with a stolen table the same per guess. At
// most a few hashes run at once, so a burst of logins queues instead of taking all memory and both cores.
import { z } from "zod"
import { ChimeraError } from "../errors.ts"

/** Length only (NIST SP 800-63B): composition rules make passwords worse, not better. */
export const Password = z
  .string()
  .min(10, "expected a password of at least 10 characters")
  .max(1024, "expected a password of at most 1024 characters")

const PARAMS = { algorithm: "argon2id", memoryCost: 19_456, timeCost: 2 } as const
const MAX_PARALLEL = 2
/**
 * Checks waiting beyond this are refused at once (429): a login flood from many addresses, each within
 * its own rate limit, would otherwise queue without bound, in memory and in time, ahead of real logins.
 * 256 is about four seconds of work.
 */
export const MAX_WAITING = 256

let running = 0
const waiting: (() => void)[] = []

async function limited<T>(work: () => Promise<T>): Promise<T> {
  // A finishing hash hands its slot straight to the next in line, so the count never overshoots.
  if (running >= MAX_PARALLEL) {
    if (waiting.length >= MAX_WAITING)
      throw new ChimeraError("RESOURCE_EXHAUSTED", "too many password checks are waiting; try again in a few seconds")
    await new Promise<void>((resolve) => waiting.push(resolve))
  } else running++
  try {
    return await work()
  } finally {
    const next = waiting.shift()
    if (next) next()
    else running--
  }
}

export function hashPassword(password: string): Promise<string> {
  return limited(() => Bun.password.hash(password, PARAMS))
}

// A login for an unknown user still pays for one verification, so its timing does not reveal
// which usernames exist.
let decoy: Promise<string> | null = null

export async function verifyPassword(password: string, hash: string | null): Promise<boolean> {
  decoy ??= hashPassword("chimera-decoy-password")
  const against = hash ?? (await decoy)
  const ok = await limited(() => Bun.password.verify(password, against).catch(() => false))
  return hash !== null && ok
}
