// Where the CLI may send a credential. A token or password sent over plain HTTP can be read by anyone
// on the way and replayed as its owner, so the CLI sends one over http:// only to this machine (a
// loopback address: 127.0.0.0/8, ::1, localhost), unless CHIMERA_ALLOW_HTTP=1 says the network is
// trusted; https:// goes anywhere. It refuses before connecting, so nothing leaves. The local admin
// token ($CHIMERA_DATA_DIR/admin.token) is picked up on its own only for a loopback URL: it belongs to
// the control plane on this machine, not to whatever CHIMERA_URL names.
import { z } from "zod"
import { displayUrl } from "../../protocol/log.ts"
import { isLoopbackHost } from "../../protocol/loopback.ts"
import { CliError } from "./errors.ts"

const AllowHttp = z.enum(["0", "1"])

/** CHIMERA_URL read as an http(s) URL, or a CliError saying what is expected. */
export function parseControlUrl(raw: string): URL {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new CliError(
      `CHIMERA_URL: ${JSON.stringify(raw)} is not a URL; expected e.g. https://chimera.example.com or http://127.0.0.1:8080`,
      "E_ARG",
    )
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new CliError(`CHIMERA_URL: expected an http:// or https:// URL, not ${url.protocol}`, "E_ARG")
  // The CLI authenticates with a token; a user and password in the URL would be sent nowhere useful
  // and echoed in every message that names the URL.
  if (url.username || url.password)
    throw new CliError(
      `CHIMERA_URL: ${displayUrl(raw)} carries a user or password; remove it (the CLI sends a token: CHIMERA_TOKEN, \`chimera login\`)`,
      "E_ARG",
    )
  return url
}

/** Refuses, before any connection, to send a credential in the clear to a host off this machine. */
export function checkTransport(raw: string, env: Record<string, string | undefined> = process.env): void {
  const url = parseControlUrl(raw)
  if (url.protocol === "https:" || isLoopbackHost(url.hostname)) return
  const allow = AllowHttp.safeParse(env.CHIMERA_ALLOW_HTTP || "0")
  if (!allow.success)
    throw new CliError("CHIMERA_ALLOW_HTTP: expected 1 (send credentials over plain HTTP anyway) or 0", "E_ARG")
  if (allow.data === "1") return
  throw new CliError(
    `refusing to send credentials to ${raw} over plain HTTP: anyone on the way could read them and act as you. ` +
      "Use https://, or reach the control plane at a loopback address (e.g. through an SSH tunnel), " +
      "or set CHIMERA_ALLOW_HTTP=1 if you trust every network in between",
    "E_INSECURE_URL",
  )
}
