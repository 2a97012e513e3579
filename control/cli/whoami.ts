// `chimera whoami [--json]`: which identity the CLI's commands act as: the user (or API token) and its
// role as the control plane sees them, how the CLI authenticates (CHIMERA_TOKEN, the login session, or
// the local admin token file; credentials.ts gives the order) and which control plane it talks to.
// A credential the control plane refuses (an expired session) is reported with where it came from.
import { defineCommand } from "citty"
import { controlCredential, controlUrl, describeCredential } from "./credentials.ts"
import { fetchIdentity } from "./identity.ts"
import { printFields, printJson } from "./output.ts"

export default defineCommand({
  meta: { name: "whoami", description: "Show the identity and control plane the CLI's commands use" },
  args: { json: { type: "boolean", description: "Print JSON" } },
  async run({ args }) {
    const url = controlUrl()
    const credential = controlCredential()
    const me = await fetchIdentity(url, credential)
    const authenticated = {
      source: credential.source,
      path: credential.path,
      expiresAt: credential.expiresAt,
    }
    if (args.json)
      return printJson({ url, name: me.name, role: me.role, via: me.via, authenticated, permissions: me.permissions })
    printFields([
      ["user", me.via === "api-token" ? `${me.name} (API token)` : me.name],
      ["role", me.role],
      ["authenticated", describeCredential(credential)],
      ["control plane", url],
      ["permissions", me.permissions.join(", ")],
    ])
  },
})
