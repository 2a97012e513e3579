// The commands of the `chimera` CLI, each loaded only when invoked (main.ts), and the flags every
// command takes. Tests walk this table (commands.test.ts).
import type { ArgsDef, CommandDef } from "citty"

type Load = () => Promise<CommandDef>
const def = <T>(m: Promise<T>, pick: (m: T) => unknown) => m.then((x) => pick(x) as CommandDef)

export const COMMANDS: Record<string, [description: string, load: Load]> = {
  web: ["Start the control plane: API, agent endpoints and dashboard", () => def(import("./web.ts"), (m) => m.default)],
  // The agent's own usage names it chimera-agent; under the CLI it is `chimera agent`.
  agent: [
    "Start the node agent daemon",
    () =>
      def(import("../../agent/main.ts"), (m) => ({
        ...m.agentCommand,
        meta: { ...m.agentCommand.meta, name: "agent" },
      })),
  ],
  nodes: [
    "Enrolled nodes: list, show, join tokens, desired closures, run a command, revoke, remove",
    () => def(import("./nodes.ts"), (m) => m.default),
  ],
  events: [
    "Show the fleet's events (drift, heals, enrolments), or follow them live",
    () => def(import("./events.ts"), (m) => m.default),
  ],
  incidents: [
    "Incidents opened from the fleet's events: list them, show one with its timeline, tickets and deliveries, resolve one",
    () => def(import("./incidents.ts"), (m) => m.default),
  ],
  notify: [
    "Notification channels: send a test notice through each and see what it answered",
    () => def(import("./notify.ts"), (m) => m.default),
  ],
  login: ["Log in and keep the session token for later commands", () => def(import("./login.ts"), (m) => m.login)],
  logout: ["Revoke the stored session token and forget it", () => def(import("./login.ts"), (m) => m.logout)],
  whoami: [
    "Show the identity and control plane the CLI's commands use",
    () => def(import("./whoami.ts"), (m) => m.default),
  ],
  users: ["Local users: add, list, remove, passwd, set-role", () => def(import("./users.ts"), (m) => m.default)],
  tokens: ["API tokens for automation: create, list, revoke", () => def(import("./tokens.ts"), (m) => m.default)],
  audit: [
    "Show or export the audit log: who did what, where, when, with which result",
    () => def(import("./audit.ts"), (m) => m.default),
  ],
  exec: ["Run one command on many nodes over SSH", () => def(import("./exec.ts"), (m) => m.default)],
  run: [
    "Run a command inside nix-shell CONFIG in a persistent tmux session",
    () => def(import("./run-command.ts"), (m) => m.default),
  ],
  attach: [
    "Attach to a persistent session (without a terminal: print its pane)",
    () => def(import("./attach.ts"), (m) => m.default),
  ],
  sessions: ["Persistent sessions of `chimera run`: list, kill", () => def(import("./sessions.ts"), (m) => m.default)],
  deploy: [
    "Deploy a configuration to nodes over SSH, in parallel, with magic rollback",
    () => def(import("./deploy.ts"), (m) => m.default),
  ],
  rollback: [
    "Roll nodes back to the previous (or a named) NixOS generation",
    () => def(import("./rollback.ts"), (m) => m.default),
  ],
  generations: ["List the system generations of nodes", () => def(import("./generations.ts"), (m) => m.default)],
  watch: [
    "Detect and heal drift on nodes over SSH, once or on a schedule",
    () => def(import("./watch.ts"), (m) => m.default),
  ],
  mcp: [
    "Serve MCP (chimera-service) for AI agents, over HTTP or stdio",
    () => def(import("./mcp.ts"), (m) => m.default),
  ],
  dash: [
    "Watch the fleet live in the terminal (control plane, or SSH with --targets)",
    () => def(import("./dash.ts"), (m) => m.default),
  ],
  deployments: [
    "List recorded deployments and heals, or show one",
    () => def(import("./deployments.ts"), (m) => m.default),
  ],
  chat: [
    "Ask the fleet's assistant; changes it proposes wait for your approval",
    () => def(import("./chat.ts"), (m) => m.default),
  ],
  code: [
    "Drive the fleet's assistant headless: --mode rpc speaks JSON lines on stdin/stdout",
    () => def(import("./code.ts"), (m) => m.default),
  ],
}

/** Read by cli/globals.ts before any command runs; listed here so --help shows them. */
export const GLOBAL_ARGS = {
  verbose: { type: "boolean", alias: "v", description: "Verbose output (log level INFO)" },
  debug: { type: "boolean", description: "Debug output with full stack traces" },
} satisfies ArgsDef
