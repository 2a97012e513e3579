// `chimera deployments [list] [--json]`: recorded deploys and heals, newest first; `chimera deployments
// [show] ID`: one in full (`list` and `show` as in `chimera incidents list` and `chimera incidents show ID`).
import { defineCommand } from "citty"
import type { UnfinishedDeployment } from "../ops/fleet-operations.ts"
import { openCliStore } from "./cli-store.ts"
import { printDeployment } from "./deploy.ts"
import { CliError } from "./errors.ts"
import { limitFlag } from "./flags.ts"
import { printJson, printTable, say } from "./output.ts"

export default defineCommand({
  meta: { name: "deployments", description: "List recorded deployments and heals, or show one" },
  args: {
    action: {
      type: "positional",
      description: "list (the default), or show ID to see one (a deployment id alone shows it too)",
      required: false,
    },
    id: { type: "positional", description: "A deployment id", required: false },
    limit: { type: "string", description: "How many", default: "20" },
    json: { type: "boolean", description: "Print JSON" },
  },
  async run({ args }) {
    const limit = limitFlag(args.limit, 1000)
    const [first, second] = args._.map(String)
    // `list` is the listing, as for nodes and incidents, not a deployment whose id is "list".
    const id = first === "show" ? second : first === "list" ? undefined : first
    if (first === "list" && second !== undefined)
      throw new CliError(`list takes no id: to see one, chimera deployments show ${second}`, "E_ARG")
    if (first !== "show" && first !== "list" && second !== undefined)
      throw new CliError(
        `unexpected argument ${JSON.stringify(second)}: one deployment at a time (chimera deployments show ID)`,
        "E_USAGE",
      )
    if (first === "show" && id === undefined)
      throw new CliError("show: give the deployment's id (chimera deployments show ID)", "E_ARG")
    const store = await openCliStore()
    try {
      if (id) {
        const record = await store.getDeployment(id)
        if (!record)
          throw new CliError(
            `no deployment ${JSON.stringify(id)}: give an id from \`chimera deployments\``,
            "E_NOT_FOUND",
          )
        if (record.status === "interrupted") process.exitCode = 1
        if (args.json) return printJson(record)
        // Still running, or interrupted (its control plane stopped): its targets' progress so far.
        if (record.status === "running" || record.status === "interrupted") return printUnfinished(record)
        return printDeployment(record)
      }
      const records = await store.listDeployments(limit)
      if (args.json) return printJson({ deployments: records })
      if (records.length === 0) return say("No deployments recorded yet: each `chimera deploy` run is recorded here.\n")
      printTable(
        ["ID", "KIND", "STATUS", "TARGETS", "CLOSURE"],
        records.map((r) => [r.id, r.kind, r.status, String(r.targets.length), r.closure.slice(11)]),
      )
    } finally {
      await store.close()
    }
  },
})

function printUnfinished(d: UnfinishedDeployment): void {
  printTable(
    ["TARGET", "PROGRESS"],
    d.targets.map((t) => [t, d.progress[t] ?? "-"]),
  )
  say(`\ndeploy ${d.id}: ${d.status} (started ${d.createdAt})${d.status === "interrupted" ? `: ${d.reason}` : ""}\n`)
}
