#!/usr/bin/env bun
// The `chimera` CLI. Each command lives in cli/ (the agent in agent/) and only the one invoked is
// imported: citty reads every subcommand to list them under --help, so the others are stand-ins that
// carry just their name and description. `chimera --help` loads nothing but the table (cli/commands.ts).
import { defineCommand } from "citty"
import { VERSION } from "../protocol/version.ts"
import { COMMANDS, GLOBAL_ARGS } from "./cli/commands.ts"
import { runCli } from "./cli/run.ts"

const given = process.argv.slice(2)
// `chimera help [COMMAND…]` is what many CLIs take for `--help`; no command is named help.
const helpAt = given.findIndex((a) => !a.startsWith("-"))
const argv = given[helpAt] === "help" ? [...given.toSpliced(helpAt, 1), "--help"] : given
const invoked = argv.find((a) => !a.startsWith("-"))

const main = defineCommand({
  meta: { name: "chimera", version: VERSION, description: "Keep a fleet of NixOS machines on the closures you chose" },
  args: GLOBAL_ARGS,
  subCommands: Object.fromEntries(
    Object.entries(COMMANDS).map(([name, [description, load]]) => [
      name,
      name === invoked ? load : { meta: { name, description } },
    ]),
  ),
})

await runCli(main, argv)
