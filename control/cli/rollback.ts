// `chimera rollback --targets T [--generation GEN]`: back one generation, or to GEN, on every target
// in parallel; each reports the generation it is on now. When a control plane is configured, each
// enrolled target's desired closure becomes the one it rolled back to (as a deploy's does), so its
// agent keeps the rollback instead of healing it away.
import { defineCommand } from "citty"
import { createLogger } from "../../protocol/log.ts"
import { rollback } from "../domain/rollback.ts"
import { keepRecord } from "./cli-store.ts"
import { CliError } from "./errors.ts"
import { color, printJson, printTable } from "./output.ts"
import { desiredPublisher, reportPublished } from "./publish-desired.ts"
import { parseSshFlags, sshArgs } from "./ssh-flags.ts"

const log = createLogger("rollback")

export default defineCommand({
  meta: { name: "rollback", description: "Roll nodes back to the previous (or a named) NixOS generation" },
  args: {
    generation: {
      type: "string",
      alias: "g",
      description: "Generation number to switch to (default: the previous one)",
    },
    json: { type: "boolean", description: "Print JSON" },
    ...sshArgs,
  },
  async run({ args }) {
    const gen = args.generation === undefined ? null : Number(args.generation)
    if (gen !== null && !(Number.isInteger(gen) && gen > 0))
      throw new CliError("--generation: expected a generation number (see chimera generations)", "E_ARG")
    const ssh = await parseSshFlags(args)
    const exec = ssh.executor()
    try {
      const publisher = desiredPublisher()
      const results = await rollback(exec, ssh.targets, gen, ssh.parallel, {
        onRolledBack: publisher ? (target, closure) => publisher.publish(target, closure) : undefined,
      })
      for (const r of results) log.info("rollback", { target: r.target, ok: r.ok, generation: r.generation, ms: r.ms })
      if (args.json) printJson({ results })
      else
        printTable(
          ["TARGET", "RESULT", "GENERATION", "SYSTEM"],
          results.map((r) => [
            r.target,
            r.ok ? color.green("rolled back") : color.red("failed"),
            String(r.generation ?? "-"),
            r.path ?? r.error ?? "",
          ]),
        )
      if (results.some((r) => !r.ok)) process.exitCode = 1
      reportPublished(publisher, Boolean(args.json))
      await keepRecord("rollback", (store) =>
        store.recordOperation(
          "rollback",
          results.map((r) => ({
            target: r.target,
            command: `rollback${gen === null ? "" : ` --generation ${gen}`}`,
            ok: r.ok,
            detail: { generation: r.generation, error: r.error },
          })),
        ),
      )
    } finally {
      await exec.close()
    }
  },
})
