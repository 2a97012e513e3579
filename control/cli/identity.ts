// Who the CLI acts as on the control plane: the credential it sends (credentials.ts) and what the
// control plane makes of it (`GET /api/auth/me`: name, role, session or API token). `chimera whoami`
// prints it; with --verbose every command that calls the API says it once on stderr before its
// output, so a login that quietly took over from the local admin token is never a surprise.
import { hc } from "hono/client"
import { z } from "zod"
import { ApiErrorBody } from "../../protocol/errors.ts"
import type { AppType } from "../api/app.ts"
import { Role } from "../domain/auth/roles.ts"
import { type Credential, controlCredential, describeCredential } from "./credentials.ts"
import { CliError, unreachable } from "./errors.ts"
import { globals } from "./globals.ts"
import { color, warn } from "./output.ts"

export const Me = z.object({
  name: z.string(),
  role: Role,
  via: z.enum(["session", "api-token"]),
  permissions: z.array(z.string()),
})
export type Me = z.infer<typeof Me>

/** What the control plane at `url` says `credential` is; a CliError with its answer when it refuses. */
export async function fetchIdentity(url: string, credential: Credential): Promise<Me> {
  const client = hc<AppType>(url, { headers: { authorization: `Bearer ${credential.token}` } })
  const res = await client.api.auth.me.$get().catch((error: Error) => {
    throw unreachable(url, error)
  })
  const body: unknown = await res.json().catch(() => null)
  if (!res.ok) {
    const err = ApiErrorBody.safeParse(body)
    const why = err.success ? `${err.data.error} (${res.status} ${err.data.code})` : `${res.status}`
    throw new CliError(`${url} refused the ${describeCredential(credential)}: ${why}`, "E_API")
  }
  const me = Me.safeParse(body)
  if (!me.success) throw new CliError(`${url} answered GET /api/auth/me with something else`, "E_API")
  return me.data
}

/** "alice (operator)", "bootstrap admin (admin, API token)". */
export const describeMe = (me: Me) => `${me.name} (${me.role}${me.via === "api-token" ? ", API token" : ""})`

let announced: Promise<void> | null = null

/** With --verbose, once per process: the identity in use, on stderr. Never fails the command. */
export function announceIdentity(url: string): Promise<void> {
  if (!globals.verbose) return Promise.resolve()
  const pending = announced ?? _announce(url)
  announced = pending
  return pending
}

async function _announce(url: string): Promise<void> {
  const say = (s: string) => warn(`${color.dim(`chimera: ${s}`)}\n`)
  let credential: Credential
  try {
    credential = controlCredential()
  } catch {
    return say(`no credential for ${url}`)
  }
  try {
    const me = await fetchIdentity(url, credential)
    say(`acting as ${describeMe(me)} with the ${describeCredential(credential)} on ${url}`)
  } catch (error) {
    say(`using the ${describeCredential(credential)} on ${url}; ${(error as Error).message}`)
  }
}
