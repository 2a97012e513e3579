// Every command of the CLI, loaded for real: no two of its flags answer to the same name or short
// alias, the flags every command takes included (a clash makes `chimera watch -i …` mean whichever
// flag citty happens to read first).
import { describe, expect, test } from "bun:test"
import type { ArgsDef, CommandDef } from "citty"
import { COMMANDS, GLOBAL_ARGS } from "./commands.ts"

type Resolvable<T> = T | Promise<T> | (() => T) | (() => Promise<T>)
const resolve = async <T>(v: Resolvable<T> | undefined): Promise<T | undefined> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v

/** Each command and subcommand under `path`, with its own args. */
async function* walk(path: string, command: CommandDef): AsyncGenerator<[string, ArgsDef]> {
  yield [path, (await resolve(command.args as Resolvable<ArgsDef>)) ?? {}]
  const subs = (await resolve(command.subCommands as Resolvable<Record<string, Resolvable<CommandDef>>>)) ?? {}
  for (const [name, sub] of Object.entries(subs)) {
    const resolved = await resolve(sub)
    if (resolved) yield* walk(`${path} ${name}`, resolved)
  }
}

/** Names a flag answers to, each with the flag that claims it: `--name` and every `-alias`. */
function claims(args: ArgsDef): [string, string][] {
  return Object.entries(args).flatMap(([name, arg]) => {
    if (arg.type === "positional") return []
    const aliases = "alias" in arg && arg.alias !== undefined ? [arg.alias].flat() : []
    return [[`--${name}`, name], ...aliases.map((a): [string, string] => [a.length === 1 ? `-${a}` : `--${a}`, name])]
  })
}

describe("CLI flags", () => {
  test("no command has two flags answering to the same name or alias", async () => {
    const clashes: string[] = []
    let commands = 0
    for (const [name, [, load]] of Object.entries(COMMANDS)) {
      for await (const [path, args] of walk(`chimera ${name}`, await load())) {
        commands++
        const owner = new Map<string, string>()
        for (const [flag, arg] of [...claims(GLOBAL_ARGS), ...claims(args)]) {
          const first = owner.get(flag)
          if (first !== undefined && first !== arg) clashes.push(`${path}: ${flag} is both --${first} and --${arg}`)
          owner.set(flag, first ?? arg)
        }
      }
    }
    expect(commands).toBeGreaterThan(Object.keys(COMMANDS).length)
    expect(clashes).toEqual([])
  })
})

describe("CLI descriptions", () => {
  test("the line `chimera --help` gives each command is the command's own description", async () => {
    const differ: string[] = []
    for (const [name, [line, load]] of Object.entries(COMMANDS)) {
      const meta = await resolve((await load()).meta as Resolvable<{ description?: string }>)
      if (meta?.description !== line) differ.push(`${name}: "${line}" against its own "${meta?.description}"`)
    }
    expect(differ).toEqual([])
  })
})
