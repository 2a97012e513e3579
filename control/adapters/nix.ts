// NixPort on the real Nix tools of the operator's machine: nix-build, nix-instantiate, nix-shell and
// nix-store, run as child processes with the caller's environment passed through (NIX_CONFIG, NIX_PATH),
// so whatever substituters the operator configured are used and none are added here.
//
// nix-shell without nixpkgs: Nix 2.8 looks for its interactive shell as `(import <nixpkgs> {}).bashInteractive`
// unless NIX_BUILD_SHELL is set; with no <nixpkgs> it prints an evaluation error and falls back to the `bash`
// of $PATH. We set NIX_BUILD_SHELL to the absolute path of that bash ourselves when <nixpkgs> cannot be
// found: no spurious error, and nix-shell prepends the shell's own directory to PATH, so a bare `bash`
// would put `.` on PATH where an absolute path puts `/usr/bin`. Where <nixpkgs> exists, Nix's choice stands.
//
// A closure already built (a store path, or a link to one such as the `./result` of
// `nix build .#nixosConfigurations.NAME.config.system.build.toplevel`) is taken as it is: that is how a
// flake's system reaches `deploy` and `watch`, which build Nix files only with nix-build.
import { existsSync, lstatSync, readlinkSync, realpathSync, statSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { hashOf, StorePath } from "../../protocol/ids.ts"
import { createLogger } from "../../protocol/log.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { BuildResult, ClosureSize, NixPort, NixShellPort } from "../domain/operation-ports.ts"

const log = createLogger("nix")

/** A Nix command failed, or its input is missing; `stderr` holds the tail of what Nix said. */
export class NixError extends ChimeraError {
  override readonly name: string = "NixError"
  constructor(
    code: "NOT_FOUND" | "VALIDATION_FAILED",
    message: string,
    readonly path: string,
    readonly stderr = "",
  ) {
    super(code, message, { path, stderr })
  }
}

export interface NixOptions {
  /** Variables added to (or, when undefined, removed from) the inherited environment. */
  env?: Record<string, string | undefined>
  /** Directory relative config paths are resolved against (default: the process's cwd). */
  cwd?: string
}

/** NixPort plus entering an interactive nix-shell (`--command 'init; return'`) from a tmux session. */
export type LocalNix = NixPort & NixShellPort

interface Output {
  code: number
  stdout: string
  stderr: string
}

const TAIL_LINES = 20
const tail = (s: string) => s.trim().split("\n").slice(-TAIL_LINES).join("\n")
const lastLine = (s: string) => s.trim().split("\n").at(-1) ?? ""

export function createNix(opts: NixOptions = {}): LocalNix {
  const env = { ...process.env, ...opts.env }
  let buildShell: Promise<string | null> | undefined

  async function exec(argv: string[]): Promise<Output> {
    const started = performance.now()
    const proc = Bun.spawn(argv, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    log.debug("exec", { argv: argv.slice(0, 3), code, ms: Math.round(performance.now() - started) })
    return { code, stdout, stderr }
  }

  /** The config file as an absolute path, or a NixError that names it. */
  function configFile(configPath: string): string {
    const path = resolve(opts.cwd ?? process.cwd(), configPath)
    if (!existsSync(path)) throw new NixError("NOT_FOUND", _absent(path, configPath), path)
    if (builtClosure(path))
      throw new NixError(
        "VALIDATION_FAILED",
        `${configPath} is a built closure, not a Nix file: a deploy COMMAND and \`chimera run\` enter nix-shell of a Nix file; give --config the file it was built from`,
        path,
      )
    // nix-build DIR reads DIR/default.nix, which is what the operator means by a directory.
    if (statSync(path).isDirectory() && !existsSync(`${path}/default.nix`))
      throw new NixError(
        "NOT_FOUND",
        `no Nix config at ${path}/default.nix${existsSync(`${path}/flake.nix`) ? _flakeHint("#") : ""}`,
        path,
      )
    return path
  }

  async function ok(argv: string[], what: string, path: string): Promise<string> {
    const out = await exec(argv)
    if (out.code === 0) return out.stdout
    const said = tail(out.stderr) || tail(out.stdout)
    throw new NixError("VALIDATION_FAILED", `${what} ${path} failed (exit ${out.code}):\n${said}`, path, said)
  }

  /** NIX_BUILD_SHELL for nix-shell, or null when Nix's own choice (or the caller's) applies. */
  function nixBuildShell(): Promise<string | null> {
    buildShell ??= (async () => {
      if (env.NIX_BUILD_SHELL) return null
      const found = await exec(["nix-instantiate", "--find-file", "nixpkgs"])
      if (found.code === 0) return null
      const bash = Bun.which("bash", { PATH: env.PATH ?? "" })
      log.debug("no <nixpkgs>: nix-shell uses bash from PATH", { bash })
      return bash
    })()
    return buildShell
  }

  async function requisites(path: StorePath): Promise<{ path: StorePath; narBytes: number }[]> {
    const paths = (await ok(["nix-store", "--query", "--requisites", path], "nix-store --query --requisites", path))
      .split("\n")
      .filter(Boolean)
      .map((p) => StorePath.parse(p))
    const sizes: number[] = []
    // Chunks keep the argv well under ARG_MAX for closures of many thousand paths.
    for (let i = 0; i < paths.length; i += 500) {
      const chunk = paths.slice(i, i + 500)
      const out = await ok(["nix-store", "--query", "--size", ...chunk], "nix-store --query --size", path)
      sizes.push(...out.split("\n").filter(Boolean).map(Number))
    }
    return paths.map((p, i) => ({ path: p, narBytes: sizes[i] ?? 0 }))
  }

  return {
    async build(configPath: string): Promise<BuildResult> {
      const built = builtClosure(resolve(opts.cwd ?? process.cwd(), configPath))
      if (built) {
        log.info("already built", { config: configPath, outPath: built })
        return { outPath: built, hash: hashOf(built), isSystem: existsSync(`${built}/bin/switch-to-configuration`) }
      }
      const path = configFile(configPath)
      const stdout = await ok(["nix-build", path, "--no-out-link"], "nix-build", path)
      const parsed = StorePath.safeParse(lastLine(stdout))
      if (!parsed.success)
        throw new NixError("VALIDATION_FAILED", `nix-build ${path} printed no store path: ${tail(stdout)}`, path)
      const outPath = parsed.data
      const isSystem = existsSync(`${outPath}/bin/switch-to-configuration`)
      log.info("built", { config: path, outPath, isSystem })
      return { outPath, hash: hashOf(outPath), isSystem }
    },

    async instantiate(configPath: string): Promise<string> {
      const path = configFile(configPath)
      const drv = lastLine(await ok(["nix-instantiate", path], "nix-instantiate", path))
      if (!drv.endsWith(".drv"))
        throw new NixError("VALIDATION_FAILED", `nix-instantiate ${path} printed no .drv`, path)
      return drv
    },

    async shell(configPath: string, command: string): Promise<string> {
      const path = configFile(configPath)
      const shell = await nixBuildShell()
      const argv = ["nix-shell", path, "--run", command]
      return ok(shell ? ["env", `NIX_BUILD_SHELL=${shell}`, ...argv] : argv, "nix-shell", path)
    },

    async closureSize(path: StorePath): Promise<ClosureSize> {
      const all = await requisites(path)
      return { paths: all.length, narBytes: all.reduce((sum, p) => sum + p.narBytes, 0) }
    },

    requisites,

    async interactiveShell(configPath: string, init: string): Promise<string[]> {
      const path = configFile(configPath)
      const shell = await nixBuildShell()
      const argv = ["nix-shell", path, "--command", `${init}; return`]
      return shell ? ["env", `NIX_BUILD_SHELL=${shell}`, ...argv] : argv
    },
  }
}

/**
 * The store path `path` is or links to when it is a built output (a directory without a default.nix
 * of its own), else null: a .nix file or a source tree in the store is still a Nix file to build.
 */
export function builtClosure(path: string): StorePath | null {
  let real: string
  try {
    real = realpathSync(path)
  } catch {
    return null
  }
  const parsed = StorePath.safeParse(real)
  if (!parsed.success || !statSync(real).isDirectory() || existsSync(`${real}/default.nix`)) return null
  return parsed.data
}

/**
 * Why there is nothing at `path`: a store path that is not (or no longer) in this store, often behind a
 * `./result` whose closure was garbage-collected, is not a Nix config that was never written.
 */
function _absent(path: string, configPath: string): string {
  let target: string | null = null
  try {
    target = lstatSync(path).isSymbolicLink() ? resolve(dirname(path), readlinkSync(path)) : null
  } catch {
    // Nothing there at all.
  }
  const missing = target ?? path
  if (missing.startsWith("/nix/store/")) {
    const what = target ? `${path} links to ${target}, which` : path
    return `${what} is not in this machine's Nix store (garbage-collected, or built elsewhere): build it again here, or copy it here with nix-copy-closure`
  }
  return `no Nix config at ${path}${_flakeHint(configPath)}`
}

/** What to do with a flake reference (`.#web-1`) or a flake's directory, which nix-build cannot read. */
const _flakeHint = (configPath: string) =>
  configPath.includes("#")
    ? `; a flake reference is not built here: build the system (\`nix build .#nixosConfigurations.NAME.config.system.build.toplevel\`) and pass --config ./result`
    : ""
