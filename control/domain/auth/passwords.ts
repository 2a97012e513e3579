// Passwords: argon2id through Bun.password, with OWASP's minimum parameters (19 MiB, 2 passes), which
// keep a login near 30 ms here while costing an attacker with a stolen table the same per guess. Every
// hash and check passes the fair queue in password-queue.ts, so a burst of logins waits (or is refused)
// instead of taking all memory and both cores, and a flood from many addresses cannot starve a new one.
import { z } from "zod"
import { type CheckCaller, type CheckQueue, createCheckQueue, DEFAULT_CHECK_LIMITS } from "./password-queue.ts"

/** Length only (NIST SP 800-63B): composition rules make passwords worse, not better. */
export const Password = z
  .string()
  .min(10, "expected a password of at least 10 characters")
  .max(1024, "expected a password of at most 1024 characters")

const PARAMS = { algorithm: "argon2id", memoryCost: 19_456, timeCost: 2 } as const
/** How many checks may wait, all sources together, before more are refused (429). */
export const MAX_WAITING = DEFAULT_CHECK_LIMITS.waiting
/** The control plane's own work (an admin setting a password): not counted against any address. */
const INTERNAL: CheckCaller = { source: null, standing: "trusted" }

export function createPasswords(queue: CheckQueue = createCheckQueue()) {
  // A login for an unknown user still pays for one verification, so its timing does not reveal
  // which usernames exist.
  let decoy: Promise<string> | null = null
  const hash = (password: string) => queue.run(INTERNAL, () => Bun.password.hash(password, PARAMS))
  return {
    queue,
    hash,
    async verify(password: string, stored: string | null, caller: CheckCaller = INTERNAL): Promise<boolean> {
      decoy ??= hash("chimera-decoy-password")
      const against = stored ?? (await decoy)
      const ok = await queue.run(caller, () => Bun.password.verify(password, against).catch(() => false))
      return stored !== null && ok
    },
  }
}

export type Passwords = ReturnType<typeof createPasswords>

/** The process's one queue: argon2's memory and the cores are the process's, whoever asks. */
export const passwords = createPasswords()
export const hashPassword = passwords.hash
export const verifyPassword = passwords.verify
