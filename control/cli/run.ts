// Runs the CLI: global flags first, then citty's dispatch, and every failure printed in one place:
// one line on stderr and exit 1 (or the status an ExitWith carries), or USAGE_STATUS for a usage mistake (`--debug` adds the stack).
// citty's usage mistakes (a missing argument) also show the command's usage; an unknown command or
// flag says where the usage is.
import { stripVTControlCharacters } from "node:util"
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty"
import { extraWords, firstWord, nearestName, unknownFlags, unknownFlagsMessage } from "../../protocol/cli-flags.ts"
import { setLogLevel } from "../../protocol/log.ts"
import { colorIfTaken } from "../../protocol/use-color.ts"
import { ChimeraError } from "../domain/errors.ts"
import { guardAdminToken } from "./credentials.ts"
import { CliError, ExitWith, USAGE_STATUS } from "./errors.ts"
import { flagLogLevel, globals, takeGlobalFlags } from "./globals.ts"
import { color, warn } from "./output.ts"

type Resolvable<T> = T | Promise<T> | (() => T | Promise<T>)
const resolved = async <T>(v: Resolvable<T> | undefined): Promise<T | undefined> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v

/**
 * Refuses a flag the command it is given to does not define (protocol/cli-flags.ts): citty would
 * drop it silently, and `chimera deploy --dryrun` would deploy. Flags before a subcommand's name are
 * the parent's, as citty reads them.
 */
async function refuseUnknownFlags(main: CommandDef, argv: string[]): Promise<void> {
  let cmd: CommandDef | undefined = main
  let raw = argv
  const path = [(await resolved(main.meta))?.name ?? "chimera"]
  while (cmd) {
    const args: ArgsDef = (await resolved(cmd.args)) ?? {}
    const subs: Record<string, Resolvable<CommandDef>> | undefined = await resolved(cmd.subCommands)
    let own = raw
    let next: CommandDef | undefined
    const at = subs && Object.keys(subs).length > 0 ? firstWord(raw, args) : -1
    if (subs && at !== -1) {
      const name = raw[at] ?? ""
      next = await _subCommand(subs, name)
      // citty looks a name up with `in`, so `chimera toString` would run Object's method and exit 0.
      if (!next) {
        const near = nearestName(Object.keys(subs), name)
        // One line, as an unknown flag is answered (and as git answers a mistyped command): the whole
        // usage before it would push the suggestion off a terminal's screen.
        const did = near ? ` (did you mean ${near}?)` : ""
        throw new CliError(`Unknown command ${name}${did}; see ${path.join(" ")} --help`, "E_USAGE")
      }
      own = raw.slice(0, at)
      raw = raw.slice(at + 1)
      path.push(name)
    } else if (subs && cmd.default !== undefined) {
      // No subcommand named: citty runs the default one with every flag (`chimera sessions --json`).
      const name = String(await resolved(cmd.default))
      cmd = await _subCommand(subs, name)
      path.push(name)
      continue
    }
    const unknown = unknownFlags(args, own)
    if (unknown.length > 0) {
      if (!next) throw new CliError(unknownFlagsMessage(path.join(" "), args, unknown), "E_USAGE")
      const where = path.slice(0, -1).join(" ")
      throw new CliError(
        `${unknownFlagsMessage(where, args, unknown)} (a command's options go after its name)`,
        "E_USAGE",
      )
    }
    const extra = next ? [] : extraWords(args, own)
    if (extra.length > 0) {
      const command = path.join(" ")
      const takes = Object.entries(args)
        .filter(([, def]) => def.type === "positional")
        .map(([name]) => name.toUpperCase())
      const what = `unexpected argument${extra.length === 1 ? "" : "s"} ${extra.map((w) => JSON.stringify(w)).join(", ")}`
      throw new CliError(
        `${what} for ${command} (it takes ${takes.length === 0 ? "none" : takes.join(" ")}); see ${command} --help`,
        "E_USAGE",
      )
    }
    cmd = next
  }
}

async function _subCommand(subs: Record<string, Resolvable<CommandDef>>, name: string) {
  if (Object.hasOwn(subs, name)) return resolved(subs[name])
  for (const sub of Object.values(subs)) {
    const def = await resolved(sub)
    const alias = (await resolved(def?.meta))?.alias
    if (alias !== undefined && [alias].flat().includes(name)) return def
  }
  return undefined
}

/** The usage of the command `argv` names, coloured only if `stream`, where it goes, takes colour. */
async function usageFor(main: CommandDef, argv: string[], stream: NodeJS.WriteStream): Promise<string> {
  let cmd = main
  // citty names a command after its parent alone ("nodes show"); the whole path is what one types.
  const path: string[] = []
  for (const arg of argv) {
    if (arg.startsWith("-")) break
    const subs: Record<string, Resolvable<CommandDef>> | undefined = await resolved(cmd.subCommands)
    const next = subs && (await _subCommand(subs, arg))
    if (!next) break
    const meta = await resolved(cmd.meta)
    path.push(meta?.name ?? arg)
    cmd = next
  }
  const mainMeta = await resolved(main.meta)
  const parent: CommandDef | undefined =
    path.length === 0 ? undefined : { meta: { name: path.join(" "), version: mainMeta?.version } }
  return colorIfTaken(tidyUsage(await renderUsage(cmd, parent)), stream)
}

/**
 * citty's usage in the words of the flags' own descriptions: its `(Default: X)` as `(default X)`, as
 * the descriptions that explain a default say it, and without the spaces it pads every line with.
 */
const tidyUsage = (usage: string) =>
  usage
    .replace(/\(Default: ([^)]*)\)/g, "(default $1)")
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")

/** Exit status of a command whose reader went away: 128 + SIGPIPE, as the shell shows for `seq 1e9 | head -1`. */
export const CLOSED_PIPE_STATUS = 141

/**
 * A reader that stops early (`chimera audit | head -1`) closes the pipe, and the next write fails with
 * EPIPE. C tools die of SIGPIPE there; Bun ignores that signal, so the error would surface as a stack
 * trace. The command ends instead as they do: quietly, with status 141, which `set -o pipefail`
 * scripts see exactly as they see it from `cat` or `seq`.
 */
function _quietOnClosedPipe() {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(CLOSED_PIPE_STATUS)
      throw error
    })
  }
}

export async function runCli<T extends ArgsDef>(command: CommandDef<T>, rawArgv: string[]): Promise<void> {
  _quietOnClosedPipe()
  guardAdminToken()
  const main = command as unknown as CommandDef
  const argv = takeGlobalFlags(rawArgv)
  setLogLevel(flagLogLevel() ?? "WARNING")
  try {
    if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
      process.stdout.write(`${await usageFor(main, argv, process.stdout)}\n`)
      return
    }
    if (argv.length === 1 && argv[0] === "--version") {
      const meta = typeof main.meta === "function" ? await main.meta() : await main.meta
      process.stdout.write(`${meta?.version ?? ""}\n`)
      return
    }
    await refuseUnknownFlags(main, argv)
    await runCommand(command, { rawArgs: argv })
  } catch (caught) {
    const [error, status] = caught instanceof ExitWith ? [caught.failure, caught.status] : [caught, 1]
    // citty's own usage errors (a missing argument) are named CLIError.
    const usage = error instanceof Error && error.name === "CLIError"
    if (usage) process.stderr.write(`${await usageFor(main, argv, process.stderr)}\n`)
    // citty colours the name in its own messages ("Unknown command <cyan>bogus</cyan>") whatever
    // NO_COLOR says; those codes are its, not foreign text, so they are dropped rather than shown escaped.
    const raw = error instanceof Error ? error.message : String(error)
    const message = usage ? stripVTControlCharacters(raw) : raw
    const known =
      usage ||
      error instanceof CliError ||
      error instanceof ChimeraError ||
      ["ConfigError", "StateError"].includes((error as Error)?.name)
    warn(`${color.red("error")} ${known ? message : `unexpected failure: ${message}`}\n`)
    if (globals.debug && error instanceof Error && error.stack) warn(`${error.stack}\n`)
    const misused =
      usage ||
      (error instanceof CliError && (error.code === "E_USAGE" || error.code === "E_ARG")) ||
      // By name, as above: importing config.ts here would load it for every --help.
      ((error as Error)?.name === "ConfigError" && (error as { fromFlags?: boolean }).fromFlags === true)
    process.exit(misused ? USAGE_STATUS : status)
  }
}
