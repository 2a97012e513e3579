#!/usr/bin/env bun
// The `chimera` CLI. Each command lives in cli/ (the agent in agent/) and is imported only when it
// runs, so `chimera --help` loads nothing but this table.
import { defineCommand } from "citty"
import { VERSION } from "../protocol/version.ts"
import { runCli } from "./cli/run.ts"

const main = defineCommand({
  meta: { name: "chimera", version: VERSION, description: "Keep a fleet of NixOS machines on the closures you chose" },
  args: {
    verbose: { type: "boolean", alias: "v", description: "Verbose output (log level INFO)" },
    debug: { type: "boolean", description: "Debug output with full stack traces" },
  },
  subCommands: {
    web: () => import("./cli/web.ts").then((m) => m.default),
    agent: () => import("../agent/main.ts").then((m) => m.agentCommand),
    nodes: () => import("./cli/nodes.ts").then((m) => m.default),
    events: () => import("./cli/events.ts").then((m) => m.default),
  },
})

await runCli(main, process.argv.slice(2))
