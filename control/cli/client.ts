// How the CLI reaches the control plane: CHIMERA_URL (default http://127.0.0.1:8080) and a token:
// CHIMERA_TOKEN, else the session `chimera login` stored for that URL, else the admin token in
// $CHIMERA_DATA_DIR (on the control-plane host, for a loopback URL only; credentials.ts), through the
// typed client hc<AppType>, so the CLI and the API cannot drift apart. No credential goes out over
// plain HTTP to another host (transport.ts).
import { hc } from "hono/client"
import { ApiErrorBody } from "../../protocol/errors.ts"
import { terminalLine } from "../../protocol/terminal-text.ts"
import type { AppType } from "../api/app.ts"
import { controlCredential, controlUrl } from "./credentials.ts"
import { CliError } from "./errors.ts"
import { announceIdentity } from "./identity.ts"

export { controlUrl } from "./credentials.ts"

export function controlToken(env = process.env): string {
  return controlCredential(env).token
}

export function apiClient(env = process.env) {
  const url = controlUrl(env)
  const client = hc<AppType>(url, { headers: { authorization: `Bearer ${controlToken(env)}` } })
  return { url, client }
}

/** Awaits an API call and returns its JSON, or throws the API's own error message. */
export async function call<T>(
  url: string,
  request: Promise<{ ok: boolean; status: number; json(): Promise<T> }>,
): Promise<T> {
  let res: Awaited<typeof request>
  try {
    res = await request
  } catch (error) {
    throw new CliError(
      `cannot reach the control plane at ${url} (${(error as Error).message}); is \`chimera web\` running? Set CHIMERA_URL to its address.`,
      "E_UNREACHABLE",
    )
  }
  // --verbose says which identity acted, before anything the command prints.
  await announceIdentity(url)
  if (res.ok) return res.json()
  const body = ApiErrorBody.safeParse(await res.json().catch(() => null))
  throw new CliError(
    (body.success
      ? `${terminalLine(body.data.error)} (${res.status} ${terminalLine(body.data.code)})`
      : `the control plane answered ${res.status}`) + (res.status === 401 ? _refusedLoginHint() : ""),
    "E_API",
  )
}

/** A refused `chimera login` session takes over from every other credential: say how to leave it. */
function _refusedLoginHint(): string {
  let credential: ReturnType<typeof controlCredential>
  try {
    credential = controlCredential()
  } catch {
    return ""
  }
  return credential.source === "login-session"
    ? `; this was the login stored in ${credential.path}: \`chimera login\` again, or \`chimera logout\` to use CHIMERA_TOKEN or the local admin token`
    : ""
}
