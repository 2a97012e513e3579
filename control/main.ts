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
    login: () => import("./cli/login.ts").then((m) => m.login),
    logout: () => import("./cli/login.ts").then((m) => m.logout),
    users: () => import("./cli/users.ts").then((m) => m.default),
    tokens: () => import("./cli/tokens.ts").then((m) => m.default),
    audit: () => import("./cli/audit.ts").then((m) => m.default),
    exec: () => import("./cli/exec.ts").then((m) => m.default),
    run: () => import("./cli/run-command.ts").then((m) => m.default),
    attach: () => import("./cli/attach.ts").then((m) => m.default),
    sessions: () => import("./cli/sessions.ts").then((m) => m.default),
    deploy: () => import("./cli/deploy.ts").then((m) => m.default),
    rollback: () => import("./cli/rollback.ts").then((m) => m.default),
    generations: () => import("./cli/generations.ts").then((m) => m.default),
    watch: () => import("./cli/watch.ts").then((m) => m.default),
    deployments: () => import("./cli/deployments.ts").then((m) => m.default),
  },
})

await runCli(main, process.argv.slice(2))
