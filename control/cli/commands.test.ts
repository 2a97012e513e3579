// Every command of the CLI, loaded for real: no two of its flags answer to the same name or short
// alias, the flags every command takes included (a clash makes `chimera watch -i …` mean whichever
// flag citty happens to read first).
import { describe, expect, test } from "bun:test"
import type { ArgsDef, CommandDef } from "citty"
import { COMMANDS, GLOBAL_ARGS } from "./commands.ts"

type Resolvable<T> = T | Promise<T> | (() => T) | (() => Promise<T>)
const resolve = async <T>(v: Resolvable<T> | undefined): Promise<T | undefined> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v

/** Each command and subcommand under `path`, with its own args and how many subcommands it has. */
async function* walk(path: string, command: CommandDef): AsyncGenerator<[string, ArgsDef, number]> {
  const subs = (await resolve(command.subCommands as Resolvable<Record<string, Resolvable<CommandDef>>>)) ?? {}
  yield [path, (await resolve(command.args as Resolvable<ArgsDef>)) ?? {}, Object.keys(subs).length]
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

/** Every command that runs (a leaf: no subcommands of its own), with its args. */
async function* leaves(): AsyncGenerator<[string, ArgsDef]> {
  for (const [name, [, load]] of Object.entries(COMMANDS))
    for await (const [path, args, subs] of walk(`chimera ${name}`, await load())) if (subs === 0) yield [path, args]
}

describe("CLI flags across commands", () => {
  test("a short flag means one thing on every command: -i is the key file, as in ssh", async () => {
    // `watch -i` was --interval while every other SSH command read it as --identity.
    const meanings = new Map<string, Set<string>>()
    for await (const [, args] of leaves())
      for (const [flag, arg] of claims(args))
        if (/^-[^-]$/.test(flag)) meanings.set(flag, (meanings.get(flag) ?? new Set()).add(`--${arg}`))
    const ambiguous = [...meanings].filter(([, m]) => m.size > 1).map(([flag, m]) => `${flag}: ${[...m].join(", ")}`)
    expect(ambiguous).toEqual([])
    expect([...(meanings.get("-i") ?? [])]).toEqual(["--identity"])
  })

  test("every command takes --json but the servers and the interactive ones, which print no data", async () => {
    // web, agent, mcp: servers. run, attach: a shell's own output and exit code, as ssh gives them.
    // code: JSON lines already (--mode rpc).
    const noData = ["chimera web", "chimera agent", "chimera mcp", "chimera run", "chimera attach", "chimera code"]
    const without: string[] = []
    for await (const [path, args] of leaves()) if (!("json" in args)) without.push(path)
    expect(without.sort()).toEqual(noData.sort())
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
