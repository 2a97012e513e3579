// `chimera run [--config PATH] [--session NAME] COMMAND`: runs COMMAND inside
// `nix-shell CONFIG` in a persistent tmux session (created if missing), streams its output to stdout
// and exits with its exit code. The session stays when the CLI exits: the next run finds the cwd and
// variables this one left, and `chimera attach` shows it all. COMMAND is every remaining word, joined
// by spaces as ssh does (`chimera run -- make test`, `chimera run 'cd /tmp && ls'`).
import { resolve } from "node:path"
import { defineCommand } from "citty"
import { z } from "zod"
import { createNix } from "../adapters/nix.ts"
import { runInNixShell } from "../domain/session-run.ts"
import { commandConfig, configPathSource, flagValue, missingNixConfig } from "./cli-config.ts"
import { CliError } from "./errors.ts"
import { commandWords } from "./flags.ts"
import { spinner } from "./interrupt.ts"
import { cliSessions, parseSessionName } from "./sessions.ts"

// The session is the command's own (unlike deploy and watch, `run` has no session_name setting); the Nix
// file is nix.config_path's unless --config names another.
const DEFAULT_SESSION = "chimera-default"
const ConfigPath = z.string().min(1, "expected a path to a Nix file")

export default defineCommand({
  meta: { name: "run", description: "Run a command inside nix-shell CONFIG in a persistent tmux session" },
  args: {
    config: {
      type: "string",
      alias: "c",
      description: "Nix config for nix-shell (default: nix.config_path, default.nix)",
    },
    session: { type: "string", alias: "s", description: `Session name (default ${DEFAULT_SESSION})` },
    command: { type: "positional", description: "Command to run (put -- before one with flags)", required: false },
  },
  async run({ args }) {
    const command = commandWords(args._)
    if (!command) throw new CliError("COMMAND: expected a command to run, e.g. chimera run 'make test'", "E_ARG")
    const layered = commandConfig({
      flags: { nix: { config_path: flagValue(args.config) } },
      flagNames: { "nix.config_path": "--config" },
    })
    const config = ConfigPath.safeParse(layered.config.nix.config_path)
    if (!config.success)
      throw new CliError(`${config.error.issues[0]?.message} (${configPathSource(layered)})`, "E_ARG")
    const session = parseSessionName(args.session ?? DEFAULT_SESSION, "--session")
    // Resolved here: the session's shell may stand in any directory, the operator means this one.
    const configPath = resolve(config.data)
    const sessions = cliSessions()

    const spin = spinner()
    let spinning = false
    const stopSpinner = () => {
      if (spinning) spin?.clear()
      spinning = false
    }
    let interrupts = 0
    const onSigint = () => {
      // The first Ctrl-C goes to the command in the session; a second one leaves it running there.
      if (++interrupts > 1) process.exit(130)
      void sessions.interrupt(session).catch(() => {})
    }
    process.on("SIGINT", onSigint)
    try {
      const result = await runInNixShell(
        {
          session,
          configPath,
          command,
          onOutput: (chunk) => {
            stopSpinner()
            process.stdout.write(chunk)
          },
        },
        {
          sessions,
          nix: createNix(),
          onPhase: (message) => {
            if (!spin || message === "running") return stopSpinner()
            if (spinning) return spin.message(message)
            spin.start(message)
            spinning = true
          },
        },
      )
      process.exitCode = result.exitCode
    } catch (error) {
      stopSpinner()
      throw missingNixConfig(error, layered) ?? error
    } finally {
      process.removeListener("SIGINT", onSigint)
    }
  },
})
