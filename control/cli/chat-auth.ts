// Who `chimera chat` talks as. The CLI's own credential first (CHIMERA_TOKEN, the `chimera login`
// session, the local admin token: credentials.ts), checked once against GET /api/auth/me. When there
// is none, or the stored session has expired, a person at a terminal is asked to log in, and the new
// session is kept as `chimera login` keeps it; a script without a terminal gets the reason instead.
// CHIMERA_TOKEN is never replaced by a prompt: automation that set it meant that token.
import * as p from "@clack/prompts"
import { unreachable } from "./client.ts"
import { type Credential, controlCredential, describeCredential } from "./credentials.ts"
import { CliError } from "./errors.ts"
import { Me } from "./identity.ts"
import { logIn } from "./login.ts"
import { color, field, promptStream, warn } from "./output.ts"
import { readSecret } from "./secret-input.ts"
import { checkTransport } from "./transport.ts"

export interface ChatIdentity {
  token: string
  me: Me
}

async function _me(url: string, token: string): Promise<Me | "refused"> {
  let res: Response
  try {
    res = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } })
  } catch (error) {
    throw unreachable(url, error)
  }
  if (res.status === 401) return "refused"
  const me = Me.safeParse(await res.json().catch(() => null))
  if (!res.ok || !me.success) throw new CliError(`${url} answered GET /api/auth/me with ${res.status}`, "E_API")
  return me.data
}

/** Asks for a username and password at the terminal and keeps the new session as `chimera login` does. */
export async function promptLogin(url: string, why: string): Promise<ChatIdentity> {
  warn(`${color.yellow("!")} ${why}; log in to ${url}\n`)
  const user = await p.text({
    message: "Username",
    initialValue: process.env.USER ?? "",
    validate: (v) => (v?.trim() ? undefined : "a username, please"),
    output: promptStream,
  })
  if (p.isCancel(user)) throw new CliError("cancelled", "E_CANCELLED")
  const password = await readSecret(`Password for ${field(user)}`, false)
  const { session } = await logIn(url, user.trim(), password)
  const me = await _me(url, session.token)
  if (me === "refused") throw new CliError(`${url} refused the session it just issued`, "E_API")
  return { token: session.token, me }
}

/** The token to chat with and who it is; prompts for a login at a terminal when it has to. */
export async function chatIdentity(url: string, interactive: boolean): Promise<ChatIdentity> {
  checkTransport(url)
  let credential: Credential
  try {
    credential = controlCredential()
  } catch (error) {
    if (interactive && error instanceof CliError && error.code === "E_NO_TOKEN")
      return promptLogin(url, "no stored session")
    throw error
  }
  const me = await _me(url, credential.token)
  if (me !== "refused") return { token: credential.token, me }
  const why = `${url} refused the ${describeCredential(credential)} (401 AUTH_FAILED)`
  if (interactive && credential.source !== "CHIMERA_TOKEN") return promptLogin(url, why)
  throw new CliError(`${why}: run \`chimera login\` or set CHIMERA_TOKEN`, "E_AUTH")
}
