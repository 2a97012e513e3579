// The layered-configuration table behind tests/config-options*.test.ts. A group names the options one
// process reads, the value each layer gives them, and how their effect is seen; `table` runs that
// process four times, the layers stacked one more each time (default; CHIMERA_CONFIG_FILE, written in
// a directory of its own so relative paths are read from there; CHIMERA_<SECTION>_<FIELD>; the flags),
// and gives each option one test that compares what was seen at every layer with what was expected.
import { describe, expect, test } from "bun:test"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"

export const LAYERS = ["default", "file", "env", "flag"] as const
export type Layer = (typeof LAYERS)[number]
/** An expectation a layer cannot be held to here (the row says why). */
export const UNCHECKED = Symbol("unchecked")

export interface Setup {
  layer: Layer
  /** The config file's directory (relative paths in the file are read from it). */
  etc: string
  env: Record<string, string>
  flags: string[]
}

export interface Row<O> {
  option: string
  /** What the file sets (a TOML value), the environment sets, the flag says. */
  file: unknown
  env: string
  flag?: string[]
  /** The flag's name where the run adds it itself (its value is known only then). */
  flagName?: string
  /** What `observe` sees at each layer; without a flag, the flag layer expects the environment's. */
  expect: Record<Exclude<Layer, "flag">, unknown> & { flag?: unknown }
  observe(o: O): unknown
}

export interface Group<O> {
  name: string
  rows: Row<O>[]
  run(setup: Setup): Promise<O>
}

export interface TableOptions {
  /** Where each run gets a directory of its own (read when the runs start). */
  workDir(): string
  /** Puts what a file layer names relatively beside the config file. */
  prepareEtc?(etc: string): Promise<void>
}

function _toml(rows: Row<unknown>[]): string {
  const root: string[] = []
  const sections = new Map<string, string[]>()
  for (const row of rows) {
    const [section = "", key] = row.option.split(".")
    const line = `${key ?? section} = ${JSON.stringify(row.file)}`
    if (key === undefined) root.push(line)
    else sections.set(section, [...(sections.get(section) ?? []), line])
  }
  return [...root, ...[...sections].map(([s, lines]) => `[${s}]\n${lines.join("\n")}`)].join("\n")
}

export const envName = (option: string) => `CHIMERA_${option.replace(".", "_").toUpperCase()}`

/** A HOME with no keys or known_hosts, and no configuration but what a layer gives. */
export async function baseEnv(dir: string): Promise<Record<string, string>> {
  await mkdir(join(dir, "home"), { recursive: true })
  return {
    HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "home", ".config"),
    SSH_AUTH_SOCK: "",
    CHIMERA_DATA_DIR: join(dir, "data"),
    CHIMERA_CONFIG_FILE: "",
    CHIMERA_URL: "",
    CHIMERA_TOKEN: "",
    CHIMERA_TMUX_SOCKET: `chimera-config-options-${process.pid}`,
    NO_COLOR: "1",
  }
}

let _runs = 0
async function _observeLayers<O>(group: Group<O>, opts: TableOptions): Promise<Record<Layer, O>> {
  const out: Partial<Record<Layer, O>> = {}
  for (const layer of LAYERS) {
    const dir = join(opts.workDir(), `run-${++_runs}`)
    const etc = join(dir, "etc")
    await mkdir(etc, { recursive: true })
    const env = await baseEnv(dir)
    const flags: string[] = []
    const at = LAYERS.indexOf(layer)
    if (at >= 1) {
      await opts.prepareEtc?.(etc)
      await writeFile(join(etc, "chimera.toml"), _toml(group.rows as Row<unknown>[]))
      env.CHIMERA_CONFIG_FILE = join(etc, "chimera.toml")
    }
    if (at >= 2) for (const row of group.rows) env[envName(row.option)] = row.env
    if (at >= 3) for (const row of group.rows) flags.push(...(row.flag ?? []))
    out[layer] = await group.run({ layer, etc, env, flags })
  }
  return out as Record<Layer, O>
}

/** One test per row; the group's process runs (four times) when the first of them starts. */
export function table<O>(group: Group<O>, opts: TableOptions) {
  let observed: Promise<Record<Layer, O>> | null = null
  describe(group.name, () => {
    for (const row of group.rows) {
      const flag = row.flagName ?? row.flag?.[0] ?? "(none)"
      test(`${row.option}: default, then file, environment (${envName(row.option)}), flag ${flag}`, async () => {
        observed ??= _observeLayers(group, opts)
        const layers = await observed
        const want = { ...row.expect, flag: "flag" in row.expect ? row.expect.flag : row.expect.env }
        const seen = LAYERS.map((l) => (want[l] === UNCHECKED ? UNCHECKED : row.observe(layers[l])))
        expect(seen).toEqual(LAYERS.map((l) => want[l]))
      })
    }
  })
}

export function jsonOf(r: { code: number; stdout: string; stderr: string }) {
  try {
    return JSON.parse(r.stdout)
  } catch {
    throw new Error(`expected JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}

/** The JSON log lines a process wrote to stderr. */
export const logLines = (stderr: string) =>
  stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
