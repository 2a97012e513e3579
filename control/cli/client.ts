// How the CLI reaches the control plane: CHIMERA_URL (default http://127.0.0.1:8080) and a token:
// CHIMERA_TOKEN, else the session `chimera login` stored for that URL, else the admin token in
// $CHIMERA_DATA_DIR (on the control-plane host, for a loopback URL only; credentials.ts), through the
// typed client hc<AppType>, so the CLI and the API cannot drift apart. No credential goes out over
// plain HTTP to another host (transport.ts).
import { hc } from "hono/client"
import { ApiErrorBody } from "../../protocol/errors.ts"
import { terminalLine } from "../../protocol/terminal-text.ts"
import type { AppType } from "../api/app.ts"
import { controlCredential, controlUrl, describeCredential } from "./credentials.ts"
import { CliError, unreachable } from "./errors.ts"
import { announceIdentity } from "./identity.ts"

export { controlUrl } from "./credentials.ts"
export { unreachable } from "./errors.ts"

export function controlToken(env = process.env): string {
  return controlCredential(env).token
}

export function apiClient(env = process.env) {
  const url = controlUrl(env)
  const client = hc<AppType>(url, { headers: { authorization: `Bearer ${controlToken(env)}` } })
  return { url, client }
}

/**
 * Awaits an API call and returns its JSON, or throws the API's own error message. `anonymous` is for
 * a request that carries no credential (a login trading a password): no identity acted, so neither
 * --verbose nor a refusal names one.
 */
export async function call<T>(
  url: string,
  request: Promise<{ ok: boolean; status: number; json(): Promise<T> }>,
  { anonymous = false } = {},
): Promise<T> {
  let res: Awaited<typeof request>
  try {
    res = await request
  } catch (error) {
    throw unreachable(url, error)
  }
  // --verbose says which identity acted, before anything the command prints.
  if (!anonymous) await announceIdentity(url)
  if (res.ok) return res.json()
  throw await refusal(url, res, { anonymous })
}

/** The error for an answer that is not a success: the API's own message and code when it sent them. */
export async function refusal(
  url: string,
  res: { status: number; json(): Promise<unknown> },
  { anonymous = false } = {},
): Promise<CliError> {
  const body = ApiErrorBody.safeParse(await res.json().catch(() => null))
  const hint = anonymous ? "" : _refusalHint(url, res.status)
  return new CliError(
    body.success
      ? `${terminalLine(body.data.error)} (${res.status} ${terminalLine(body.data.code)})${hint}`
      : // Not the API's error shape: most likely another program listens at that address.
        `${url} answered ${res.status}, not as a Chimera control plane does; is CHIMERA_URL (default http://127.0.0.1:8080) the address \`chimera web\` printed?`,
    "E_API",
    body.success ? body.data.code : undefined,
  )
}

/**
 * A refused credential: say which one went where, since the CLI picks it without asking. A login
 * session takes over from every other credential, and a control plane on another port is not the
 * one on 8080, so both are what a person most often has to be told.
 */
function _refusalHint(url: string, status: number): string {
  if (status !== 401 && status !== 403) return ""
  let credential: ReturnType<typeof controlCredential>
  try {
    credential = controlCredential()
  } catch {
    return ""
  }
  if (credential.source === "login-session")
    return status === 401
      ? `; this was the login stored in ${credential.path}: \`chimera login\` again, or \`chimera logout\` to use CHIMERA_TOKEN or the local admin token`
      : `; this was the login stored in ${credential.path}, which takes over from the local admin token: \`chimera logout\` to act as admin`
  if (status === 401)
    return `; sent the ${describeCredential(credential)} to ${url}: is that the control plane it belongs to?`
  return ""
}
