// `chimera users add|list|remove|passwd|set-role`: local users and their roles (admin), and one's own password.
import { defineCommand } from "citty"
import type { z } from "zod"
import { Role } from "../domain/auth/roles.ts"
import { Username } from "../domain/auth/sessions.ts"
import { apiClient, call } from "./client.ts"
import { CliError } from "./errors.ts"
import { printJson, printTable, say } from "./output.ts"
import { passwordStdin, readSecret } from "./secret-input.ts"

const json = { type: "boolean", description: "Print JSON" } as const
type UserView = { id: string; username: string; role: string; createdAt: string; passwordChangedAt: string }

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new CliError(`${what}: ${parsed.error.issues[0]?.message ?? "invalid"}`, "E_ARG")
  return parsed.data
}

const add = defineCommand({
  meta: { name: "add", description: "Add a user with a role (viewer, operator, admin, or metrics)" },
  args: {
    username: { type: "positional", description: "Username", required: true },
    role: { type: "string", description: "viewer, operator, admin, or metrics (reads /metrics only)", required: true },
    "password-stdin": passwordStdin,
    json,
  },
  async run({ args }) {
    const username = parse(Username, args.username, "USERNAME")
    const role = parse(Role, args.role, "--role")
    const password = await readSecret(`Password for ${username}`, args["password-stdin"] === true)
    const { url, client } = apiClient()
    const user = (await call(url, client.api.users.$post({ json: { username, password, role } }))) as UserView
    if (args.json) return printJson(user)
    say(`Added ${user.username} (${user.role})\n`)
  },
})

const list = defineCommand({
  meta: { name: "list", description: "List users and their roles" },
  args: { json },
  async run({ args }) {
    const { url, client } = apiClient()
    const { users } = (await call(url, client.api.users.$get())) as { users: UserView[] }
    if (args.json) return printJson({ users })
    printTable(
      ["USER", "ROLE", "CREATED", "PASSWORD CHANGED"],
      users.map((u) => [u.username, u.role, u.createdAt, u.passwordChangedAt]),
    )
  },
})

const remove = defineCommand({
  meta: { name: "remove", description: "Remove a user; their sessions and tokens end at once" },
  args: { username: { type: "positional", description: "Username", required: true }, json },
  async run({ args }) {
    const username = parse(Username, args.username, "USERNAME")
    const { url, client } = apiClient()
    const result = await call(url, client.api.users[":username"].$delete({ param: { username } }))
    if (args.json) return printJson(result)
    say(`Removed ${username}\n`)
  },
})

const passwd = defineCommand({
  meta: {
    name: "passwd",
    description: "Set USERNAME's password (admin), or change your own (no USERNAME); sessions end at once",
  },
  args: {
    username: { type: "positional", description: "Username (admin only; default: yourself)", required: false },
    "password-stdin": {
      ...passwordStdin,
      description: "Read passwords from stdin: the new one, or (for yourself) the current then the new",
    },
    json,
  },
  async run({ args }) {
    const fromStdin = args["password-stdin"] === true
    const { url, client } = apiClient()
    let result: unknown
    if (args.username !== undefined) {
      const username = parse(Username, args.username, "USERNAME")
      const password = await readSecret(`New password for ${username}`, fromStdin)
      result = await call(url, client.api.users[":username"].password.$put({ param: { username }, json: { password } }))
    } else {
      const currentPassword = await readSecret("Current password", fromStdin, 0)
      const newPassword = await readSecret("New password", fromStdin, 1)
      result = await call(url, client.api.auth.password.$post({ json: { currentPassword, newPassword } }))
    }
    if (args.json) return printJson(result)
    say("Password changed; that user's sessions have ended.\n")
  },
})

const setRole = defineCommand({
  meta: {
    name: "set-role",
    description:
      "Change USERNAME's role (viewer, operator, admin, metrics); their sessions end at once, and API tokens they made above the new role are revoked",
  },
  args: {
    username: { type: "positional", description: "Username", required: true },
    role: {
      type: "positional",
      description: "viewer, operator, admin, or metrics (reads /metrics only)",
      required: true,
    },
    json,
  },
  async run({ args }) {
    const username = parse(Username, args.username, "USERNAME")
    const role = Role.safeParse(args.role)
    if (!role.success)
      throw new CliError(`ROLE must be one of ${Role.options.join(", ")}, not ${JSON.stringify(args.role)}`, "E_ARG")
    const { url, client } = apiClient()
    const user = (await call(
      url,
      client.api.users[":username"].role.$put({ param: { username }, json: { role: role.data } }),
    )) as UserView
    if (args.json) return printJson(user)
    say(`${user.username} is now ${user.role}; if that changed their role, their sessions have ended.\n`)
  },
})

export default defineCommand({
  meta: { name: "users", description: "Local users: add, list, remove, passwd, set-role" },
  subCommands: { add, list, remove, passwd, "set-role": setRole },
})
