// `chimera generations --targets T`: each target's system generations (number, date, hash, current).
import { defineCommand } from "citty"
import { listGenerations } from "../domain/rollback.ts"
import { color, printJson, printTable, warn } from "./output.ts"
import { parseSshFlags, sshArgs } from "./ssh-flags.ts"

export default defineCommand({
  meta: { name: "generations", description: "List the system generations of nodes" },
  args: { json: { type: "boolean", description: "Print JSON" }, ...sshArgs },
  async run({ args }) {
    const ssh = await parseSshFlags(args)
    const exec = ssh.executor()
    try {
      const results = await listGenerations(exec, ssh.targets, ssh.parallel)
      // A target that could not be read fails the command, with --json as without (as exec and rollback).
      if (results.some((r) => !r.ok)) process.exitCode = 1
      if (args.json) return printJson({ results })
      printTable(
        ["TARGET", "GEN", "DATE", "HASH", "CURRENT"],
        results.flatMap((r) =>
          r.ok
            ? r.generations.map((g) => [
                r.target,
                String(g.number),
                g.date,
                g.path.slice(11, 43),
                g.current ? color.green("current") : "",
              ])
            : [[r.target, "-", "-", "-", color.red("failed")]],
        ),
      )
      // Each failure's reason under the table: in a column it would widen the table to its length.
      for (const r of results) {
        if (r.ok) continue
        const error = r.error ?? "failed"
        warn(`${color.red("✗")} ${error.startsWith(`${r.target}:`) ? error : `${r.target}: ${error}`}\n`)
      }
    } finally {
      await exec.close()
    }
  },
})
