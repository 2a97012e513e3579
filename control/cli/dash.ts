// `chimera dash [--targets T] [--once] [--json]`: the fleet at a glance, live, full screen. Without
// --targets it follows the control plane (CHIMERA_URL and its token, as the other commands); with
// --targets it reads each target's system links over SSH, for fleets without a control plane. With
// --once, or when stdout is not a terminal or one that cannot move its cursor (TERM=dumb), it prints
// one plain table (or --json) and exits.
import { defineCommand } from "citty"
import { z } from "zod"
import { useColor } from "../../protocol/use-color.ts"
import type { SshExecutor } from "../adapters/ssh/index.ts"
import { controlPlaneSource, type RowSource } from "../dash/control-plane-source.ts"
import { runDashboard } from "../dash/run.ts"
import { sshSource } from "../dash/ssh-source.ts"
import { table } from "../dash/view.ts"
import { CliError } from "./errors.ts"
import { printJson, printTable, statusText } from "./output.ts"
import { parseSshFlags, sshArgs } from "./ssh-flags.ts"

const Interval = z
  .string()
  .regex(/^\d+(\.\d+)?$/, "expected a number of seconds, such as 2 or 0.5")
  .transform(Number)
  .pipe(z.number().min(0.2, "expected at least 0.2 seconds").max(3600, "expected at most 3600 seconds"))

export default defineCommand({
  meta: { name: "dash", description: "Watch the fleet live in the terminal (control plane, or SSH with --targets)" },
  args: {
    ...sshArgs,
    targets: {
      type: "string",
      alias: "t",
      description:
        "Read these targets over SSH instead of asking the control plane (user@host:port, names, @tag, @all)",
    },
    interval: { type: "string", description: "Seconds between reads (events also refresh)", default: "2" },
    once: {
      type: "boolean",
      description: "Print one table and exit (also when stdout is not a terminal, or TERM=dumb)",
    },
    json: {
      type: "boolean",
      description: "With --once: print the nodes as JSON (whole store paths, not the table's text)",
    },
  },
  async run({ args }) {
    const interval = Interval.safeParse(args.interval)
    if (!interval.success) throw new CliError(`--interval: ${interval.error.issues[0]?.message}`, "E_ARG")
    let exec: SshExecutor | null = null
    let source: RowSource
    if (args.targets !== undefined) {
      const ssh = await parseSshFlags(args)
      exec = ssh.executor()
      source = sshSource(ssh.targets, exec, ssh.parallel, interval.data)
    } else {
      source = controlPlaneSource(interval.data)
    }
    try {
      // TERM=dumb (Emacs's shell, some consoles) cannot move the cursor: it gets the table, as a pipe does.
      const live =
        !args.once &&
        !args.json &&
        process.stdout.isTTY === true &&
        process.stdin.isTTY === true &&
        process.env.TERM !== "dumb"
      if (!live) {
        const rows = await source.read()
        if (args.json) return printJson({ nodes: rows.map((r) => r.data) })
        const lines = table(rows, Date.now()).map(([name = "", status = "", ...rest]) => [
          name,
          statusText(status),
          ...rest,
        ])
        printTable(["NODE", "STATUS", "DESIRED", "CURRENT", "HEARTBEAT", "REBOOT", "DRIFT"], lines)
        return
      }
      await runDashboard(source, useColor())
    } finally {
      await exec?.close()
    }
    // An event stream being torn down or an SSH socket closing must not hold the terminal.
    process.exit(0)
  },
})
