// `chimera audit`: the audit log (admin), filtered; `--export FILE` writes every matching entry as
// JSON lines (mode 0600), paging through the API so any size fits.
import { closeSync, constants, fstatSync, lstatSync, openSync, statSync, unlinkSync, writeSync } from "node:fs"
import { defineCommand } from "citty"
import { z } from "zod"
import { AuditFilter } from "../domain/auth/audit.ts"
import type { AuditRecord } from "../domain/auth/ports.ts"
import { apiClient, call } from "./client.ts"
import { CliError } from "./errors.ts"
import { limitFlag, parseFlag } from "./flags.ts"
import { printJson, printTable, warn } from "./output.ts"

const PAGE = 1000
// As AuditFilter's `since`, with a message that shows the form.
const Since = z.iso.datetime({ error: "expected an ISO 8601 UTC time, e.g. 2026-12-01T00:00:00Z" })

export default defineCommand({
  meta: { name: "audit", description: "Show or export the audit log: who did what, where, when, with which result" },
  args: {
    actor: { type: "string", description: "Only this actor (username, token name, node:ID)" },
    node: { type: "string", description: "Only this node" },
    action: { type: "string", description: 'Only this action, e.g. "PUT /api/nodes/:id/desired"' },
    result: { type: "string", description: "ok, denied, rate-limited, failed or started" },
    since: { type: "string", description: "From this ISO time" },
    limit: {
      type: "string",
      description: "Show the latest this many entries, oldest first (default 100; export: all)",
    },
    export: { type: "string", description: "Write all matching entries to FILE as JSON lines" },
    json: { type: "boolean", description: "Print JSON" },
  },
  async run({ args }) {
    const limit = limitFlag(args.limit, 10_000)
    // Checked here, by the API's own schema, so a mistake is named as the flag typed (not `query.since`).
    const filters = Object.fromEntries(
      (["actor", "node", "action", "result", "since"] as const)
        .filter((k) => args[k] !== undefined)
        .map((k) => [k, String(parseFlag(k === "since" ? Since : AuditFilter.shape[k], args[k], `--${k}`))]),
    )
    const { url, client } = apiClient()
    // The export pages from the oldest on; a listing shows the newest `limit` entries (a log that has
    // grown past it would otherwise never show what just happened).
    const page = async (after: number, limit: number, tail = false) =>
      (
        (await call(
          url,
          client.api.audit.$get({
            query: { ...filters, after, limit: String(limit), ...(tail ? { tail: true } : {}) },
          }),
        )) as {
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
      // On stderr: the export itself may be stdout (`--export /dev/stdout | gzip`).
      warn(`Exported ${count} audit entries to ${args.export}\n`)
      return
    }

    const entries = await page(0, limit, true)
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
 * The export file, this user's alone: made afresh (O_EXCL), so a file another user made at the path
 * beforehand, open to them, never receives the audit log. A regular file of this user's there is
 * replaced; a device or a pipe is written to as it is, when it and the link naming it (`/dev/stdout`)
 * are this user's or root's: a pipe another user made, or their link to a device, is refused, as it
 * would hand them the log or aim root's write at a device of their choosing. This process's own
 * stdout or stderr is written to whoever made it: under `sudo chimera audit --export /dev/stdout | gzip`
 * the pipe is the invoking user's. Anything else is refused.
 */
function openExportFile(path: string): number {
  const create = () =>
    openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  try {
    return create()
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new CliError(
        `--export: ${path}: no such directory to make the file in; name a file in one that exists`,
        "E_ARG",
      )
    if (code === "EACCES" || code === "EROFS")
      throw new CliError(
        `--export: ${path}: cannot make the file there (${code}); name a file in a directory you may write`,
        "E_ARG",
      )
    if (code !== "EEXIST") throw error
  }
  const st = lstatSync(path)
  const target = st.isSymbolicLink() ? statSync(path) : st
  if (target.isCharacterDevice() || target.isFIFO() || target.isSocket()) {
    if (!_ownStream(target)) {
      _ownedHere(path, st)
      _ownedHere(path, target)
    }
    // Without O_CREAT: what is opened is what was checked, or the open fails.
    const fd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY)
    const opened = fstatSync(fd)
    if (opened.dev !== target.dev || opened.ino !== target.ino) {
      closeSync(fd)
      throw new CliError(`--export: ${path} was replaced while it was being opened; name another file`, "E_ARG")
    }
    return fd
  }
  if (!st.isFile())
    throw new CliError(`--export: ${path} is not a regular file (a directory or a link?); name a new file`, "E_ARG")
  if (st.uid !== (process.getuid?.() ?? st.uid))
    throw new CliError(`--export: ${path} exists and belongs to uid ${st.uid}, not to you; name another file`, "E_ARG")
  unlinkSync(path)
  try {
    return create()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new CliError(`--export: ${path} was made again while it was being replaced; name another file`, "E_ARG")
    throw error
  }
}

/** A device, pipe or link at the export path must be this user's or root's (/dev/null, /dev/stdout). */
function _ownedHere(path: string, st: { uid: number }): void {
  const me = process.getuid?.() ?? st.uid
  if (st.uid !== me && st.uid !== 0)
    throw new CliError(`--export: ${path} belongs to uid ${st.uid}, not to you; name another file`, "E_ARG")
}

/** Whether `st` is the file this process's stdout or stderr already writes to (given it by its caller). */
function _ownStream(st: { dev: number; ino: number }): boolean {
  return [1, 2].some((fd) => {
    try {
      const own = fstatSync(fd)
      return own.dev === st.dev && own.ino === st.ino
    } catch {
      return false
    }
  })
}
