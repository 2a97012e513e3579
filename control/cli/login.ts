// `chimera login [USERNAME]` and `chimera logout`: trade a password for a one-hour session token and
// keep it (0600) for the commands that follow; logout revokes it on the control plane and forgets it.
import { defineCommand } from "citty"
import { hc } from "hono/client"
import type { AppType } from "../api/app.ts"
import { apiClient, call, controlUrl } from "./client.ts"
import { CliError } from "./errors.ts"
import { color, field, printJson, say, warn } from "./output.ts"
import { passwordStdin, readSecret } from "./secret-input.ts"
import { readTokenFile, removeTokenFile, writeTokenFile } from "./token-file.ts"
import { checkTransport } from "./transport.ts"

const json = { type: "boolean", description: "Print JSON" } as const

export const login = defineCommand({
  meta: { name: "login", description: "Log in and keep the session token for later commands" },
  args: {
    username: { type: "positional", description: "Username (default $USER)", required: false },
    "password-stdin": passwordStdin,
    json,
  },
  async run({ args }) {
    const username = String(args.username ?? process.env.USER ?? "")
    if (!username) throw new CliError("USERNAME: none given and $USER is not set", "E_ARG")
    const url = controlUrl()
    // Before the password is asked for: it must not be typed for a URL it cannot safely go to.
    checkTransport(url)
    const password = await readSecret(`Password for ${username}`, args["password-stdin"] === true)
    const { session, path } = await logIn(url, username, password)
    if (args.json) return printJson({ username, url, expiresAt: session.expiresAt, tokenFile: path })
    say(`Logged in to ${url} as ${color.bold(field(username))} until ${session.expiresAt}\n`)
    warn(`${color.dim(`session token kept in ${path} (mode 0600)`)}\n`)
  },
})

/** Trades a password for a session token at `url` and keeps it for the commands that follow. */
export async function logIn(url: string, username: string, password: string) {
  const client = hc<AppType>(url)
  const session = (await call(url, client.api.auth.login.$post({ json: { username, password } }), {
    anonymous: true,
  })) as {
    token: string
    expiresAt: string
  }
  const path = writeTokenFile({ url, token: session.token, expiresAt: session.expiresAt })
  return { session, path }
}

export const logout = defineCommand({
  meta: { name: "logout", description: "Revoke the stored session token and forget it" },
  args: { json },
  async run({ args }) {
    const stored = readTokenFile(controlUrl())
    let revoked = false
    if (stored && !process.env.CHIMERA_TOKEN) {
      // A token kept for a plain-HTTP URL off this machine is not sent again to revoke it; it is forgotten.
      let api: ReturnType<typeof apiClient> | null = null
      try {
        api = apiClient()
      } catch (error) {
        if (!(error instanceof CliError && error.code === "E_INSECURE_URL")) throw error
        warn(`${color.yellow("warning")} ${error.message}; forgetting the token without revoking it\n`)
      }
      revoked = api
        ? await call(api.url, api.client.api.auth.revoke.$post({ json: {} })).then(
            () => true,
            () => false, // an expired or already revoked token is logged out all the same
          )
        : false
    }
    removeTokenFile()
    if (args.json) return printJson({ loggedOut: true, revoked })
    say(stored ? "Logged out.\n" : "No stored session for this control plane.\n")
  },
})
