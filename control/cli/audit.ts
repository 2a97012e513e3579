// `chimera audit`: the audit log (admin), filtered; `--export FILE` writes every matching entry as
// JSON lines (mode 0600), paging through the API so any size fits.
import { closeSync, constants, lstatSync, openSync, unlinkSync, writeSync } from "node:fs"
import { defineCommand } from "citty"
import type { AuditRecord } from "../domain/auth/ports.ts"
import { apiClient, call } from "./client.ts"
import { CliError } from "./errors.ts"
import { printJson, printTable, say } from "./output.ts"

const PAGE = 1000

export default defineCommand({
  meta: { name: "audit", description: "Show or export the audit log: who did what, where, when, with which result" },
  args: {
    actor: { type: "string", description: "Only this actor (username, token name, node:ID)" },
    node: { type: "string", description: "Only this node" },
    action: { type: "string", description: 'Only this action, e.g. "PUT /api/nodes/:id/desired"' },
    result: { type: "string", description: "ok, denied, rate-limited or failed" },
    since: { type: "string", description: "From this ISO time" },
    limit: { type: "string", description: "At most this many entries (default 100; export: all)" },
    export: { type: "string", description: "Write all matching entries to FILE as JSON lines" },
    json: { type: "boolean", description: "Print JSON" },
  },
  async run({ args }) {
    const { url, client } = apiClient()
    const filters = Object.fromEntries(
      Object.entries({
        actor: args.actor,
        node: args.node,
        action: args.action,
        result: args.result,
        since: args.since,
      })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, String(v)]),
    )
    const page = async (after: number, limit: number) =>
      (
        (await call(url, client.api.audit.$get({ query: { ...filters, after, limit: String(limit) } }))) as {
          entries: AuditRecord[]
        }
      ).entries

    if (args.export) {
      const fd = openExportFile(args.export)
      let count = 0
      try {
        for (let after = 0; ; ) {
          const entries = await page(after, PAGE)
          for (const e of entries) writeSync(fd, `${JSON.stringify(e)}\n`)
          count += entries.length
          if (entries.length < PAGE) break
          after = entries[entries.length - 1]?.id ?? after
        }
      } finally {
        closeSync(fd)
      }
      if (args.json) return printJson({ exported: count, file: args.export })
      say(`Exported ${count} audit entries to ${args.export}\n`)
      return
    }

    const entries = await page(0, Number(args.limit ?? 100) || 100)
    if (args.json) return printJson({ entries })
    printTable(
      ["ID", "TIME", "ACTOR", "ROLE", "SOURCE", "ACTION", "NODE", "STATUS"],
      entries.map((e) => [
        String(e.id),
        e.at,
        e.actor,
        e.role ?? "-",
        e.source ?? "-",
        e.command ? `${e.action}: ${e.command}` : e.action,
        e.nodeId ?? "-",
        `${e.status} ${e.result}`,
      ]),
    )
  },
})

/**
 * The export file, this user's alone: made afresh (O_EXCL) in place of whatever was at the path, so a
 * file another user made there beforehand, open to them, never receives the audit log.
 */
function openExportFile(path: string): number {
  let fd: number
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    // It exists: it is replaced only if it is this user's own (a file of someone else's in a sticky
    // directory like /tmp cannot be removed anyway, and a directory is never removed).
    const st = lstatSync(path)
    if (st.isDirectory()) throw new CliError(`--export: ${path} is a directory; name a file`, "E_ARG")
    if (st.uid !== (process.getuid?.() ?? st.uid))
      throw new CliError(
        `--export: ${path} exists and belongs to uid ${st.uid}, not to you; name another file`,
        "E_ARG",
      )
    unlinkSync(path)
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  }
  return fd
}
