#!/usr/bin/env bun
// The `chimera` CLI. Each command lives in cli/ (the agent in agent/) and only the one invoked is
// imported: citty reads every subcommand to list them under --help, so the others are stand-ins that
// carry just their name and description. `chimera --help` loads nothing but this table.
import { type CommandDef, defineCommand } from "citty"
import { VERSION } from "../protocol/version.ts"
import { runCli } from "./cli/run.ts"

type Load = () => Promise<CommandDef>
const def = <T>(m: Promise<T>, pick: (m: T) => unknown) => m.then((x) => pick(x) as CommandDef)

const COMMANDS: Record<string, [description: string, load: Load]> = {
  web: [
    "Start the control plane: API, agent endpoints and dashboard",
    () => def(import("./cli/web.ts"), (m) => m.default),
  ],
  agent: ["Start the node agent daemon", () => def(import("../agent/main.ts"), (m) => m.agentCommand)],
  nodes: [
    "Enrolled nodes: list, show, join tokens, desired closures, run a command",
    () => def(import("./cli/nodes.ts"), (m) => m.default),
  ],
  events: [
    "Show the fleet's events (drift, heals, enrolments), or follow them live",
    () => def(import("./cli/events.ts"), (m) => m.default),
  ],
  login: ["Log in and keep the session token for later commands", () => def(import("./cli/login.ts"), (m) => m.login)],
  logout: ["Revoke the stored session token and forget it", () => def(import("./cli/login.ts"), (m) => m.logout)],
  users: ["Local users: add, list, remove, passwd", () => def(import("./cli/users.ts"), (m) => m.default)],
  tokens: ["API tokens for automation: create, list, revoke", () => def(import("./cli/tokens.ts"), (m) => m.default)],
  audit: [
    "Show or export the audit log: who did what, where, when, with which result",
    () => def(import("./cli/audit.ts"), (m) => m.default),
  ],
  exec: ["Run one command on many nodes over SSH", () => def(import("./cli/exec.ts"), (m) => m.default)],
  run: [
    "Run a command inside nix-shell CONFIG in a persistent tmux session",
    () => def(import("./cli/run-command.ts"), (m) => m.default),
  ],
  attach: [
    "Attach to a persistent session (without a terminal: print its pane)",
    () => def(import("./cli/attach.ts"), (m) => m.default),
  ],
  sessions: [
    "Persistent sessions of `chimera run`: list, kill",
    () => def(import("./cli/sessions.ts"), (m) => m.default),
  ],
  deploy: [
    "Deploy a configuration to nodes over SSH, in parallel, with magic rollback",
    () => def(import("./cli/deploy.ts"), (m) => m.default),
  ],
  rollback: [
    "Roll nodes back to the previous (or a named) NixOS generation",
    () => def(import("./cli/rollback.ts"), (m) => m.default),
  ],
  generations: ["List the system generations of nodes", () => def(import("./cli/generations.ts"), (m) => m.default)],
  watch: [
    "Detect and heal drift on nodes over SSH, once or on a schedule",
    () => def(import("./cli/watch.ts"), (m) => m.default),
  ],
  deployments: [
    "List recorded deployments and heals, or show one",
    () => def(import("./cli/deployments.ts"), (m) => m.default),
  ],
}

const argv = process.argv.slice(2)
const invoked = argv.find((a) => !a.startsWith("-"))

const main = defineCommand({
  meta: { name: "chimera", version: VERSION, description: "Keep a fleet of NixOS machines on the closures you chose" },
  args: {
    verbose: { type: "boolean", alias: "v", description: "Verbose output (log level INFO)" },
    debug: { type: "boolean", description: "Debug output with full stack traces" },
  },
  subCommands: Object.fromEntries(
    Object.entries(COMMANDS).map(([name, [description, load]]) => [
      name,
      name === invoked ? load : { meta: { name, description } },
    ]),
  ),
})

await runCli(main, argv)
