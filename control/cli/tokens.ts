// `chimera tokens create|list|revoke`: long-lived API tokens for automation, each scoped to a role.
import { defineCommand } from "citty"
import { z } from "zod"
import { TokenName } from "../domain/auth/accounts.ts"
import { Role } from "../domain/auth/roles.ts"
import { apiClient, call, unreachable } from "./client.ts"
import { CliError } from "./errors.ts"
import { color, printJson, printTable, say, warn } from "./output.ts"

const json = { type: "boolean", description: "Print JSON" } as const
type TokenView = {
  id: string
  name: string
  role: string
  createdAt: string
  expiresAt: string | null
  revokedAt: string | null
}
const TtlDays = z
  .string()
  .regex(/^\d+$/, "expected a whole number of days")
  .transform(Number)
  .pipe(z.number().min(1).max(3650))

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new CliError(`${what}: ${parsed.error.issues[0]?.message ?? "invalid"}`, "E_ARG")
  return parsed.data
}

const create = defineCommand({
  meta: { name: "create", description: "Create an API token (shown once)" },
  args: {
    name: { type: "positional", description: "A name that says what uses it", required: true },
    role: {
      type: "string",
      description: "metrics (scrapes GET /metrics only), viewer, operator or admin",
      required: true,
    },
    "ttl-days": { type: "string", description: "Days until it expires (default: never)" },
    json,
  },
  async run({ args }) {
    const name = parse(TokenName, args.name, "NAME")
    const role = parse(Role, args.role, "--role")
    const ttlDays = args["ttl-days"] === undefined ? undefined : parse(TtlDays, args["ttl-days"], "--ttl-days")
    const { url, client } = apiClient()
    const created = (await call(url, client.api.tokens.$post({ json: { name, role, ttlDays } }))) as TokenView & {
      token: string
    }
    if (args.json) return printJson(created)
    say(`${created.token}\n`)
    warn(`${color.dim(`token ${created.id} (${role}); it is shown only now. Use it as CHIMERA_TOKEN.`)}\n`)
  },
})

const list = defineCommand({
  meta: { name: "list", description: "List API tokens (never their secrets)" },
  args: { json },
  async run({ args }) {
    const { url, client } = apiClient()
    const { tokens } = (await call(url, client.api.tokens.$get())) as { tokens: TokenView[] }
    if (args.json) return printJson({ tokens })
    printTable(
      ["ID", "NAME", "ROLE", "CREATED", "EXPIRES", "REVOKED"],
      tokens.map((t) => [t.id, t.name, t.role, t.createdAt, t.expiresAt ?? "never", t.revokedAt ?? ""]),
    )
  },
})

const revoke = defineCommand({
  meta: { name: "revoke", description: "Revoke an API token; it is refused from its next request" },
  args: { id: { type: "positional", description: "Token id (chimera tokens list)", required: true }, json },
  async run({ args }) {
    const id = String(args.id)
    const { url, client } = apiClient()
    const res = await client.api.tokens[":id"].$delete({ param: { id } }).catch((error: unknown) => {
      throw unreachable(url, error)
    })
    // A name typed where the id goes (the name is what `tokens create` was given): say which id it has.
    if (res.status === 404) {
      const { tokens } = (await call(url, client.api.tokens.$get())) as { tokens: TokenView[] }
      const named = tokens.filter((t) => t.name === id && t.revokedAt === null)
      if (named.length > 0)
        throw new CliError(
          `tokens are revoked by id, and "${id}" is the name of ${named.length === 1 ? "token" : "tokens"} ${named.map((t) => t.id).join(", ")}: chimera tokens revoke ${named[0]?.id}`,
          "E_NOT_FOUND",
        )
    }
    const result = await call(url, Promise.resolve(res))
    if (args.json) return printJson(result)
    say(`Revoked ${id}\n`)
  },
})

export default defineCommand({
  meta: { name: "tokens", description: "API tokens for automation: create, list, revoke" },
  subCommands: { create, list, revoke },
})
