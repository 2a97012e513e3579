#!/usr/bin/env bun
// Compiles Chimera's two programs into single self-contained executables, at the fixed paths that
// nix/package.nix, the README and the tests rely on:
//
//   bun scripts/build.ts [--target bun-linux-x64|bun-linux-arm64|…] [--outdir dist]
//   bun run build
//
//   agent/main.ts   -> dist/chimera-agent   (the node daemon; nix/package.nix packages this file)
//   control/main.ts -> dist/chimera         (the CLI and control plane)
//
// Each is `bun build --compile`: the Bun runtime plus the bundled code, no node_modules needed on the
// node. Identifiers are kept (no name mangling) so error names and stack traces stay readable; the source
// map is embedded in the executable. The CLI carries its code as bytecode as well (`--bytecode`, ESM so
// that top-level await stays): every command is bundled, and parsing all of it at each start made
// `chimera --help` take 180-220 ms where it now takes 70-100. The agent does not: it starts once, and
// its bytecode would cost about 1.3 MB of the 50 MB its RSS is allowed.
// Prints each file and its size; exits 1 with the compiler's errors if a build fails.
//
//   --program chimera-agent|chimera   build only that one (the tests that need only the agent)
import { statSync } from "node:fs"
import { rm } from "node:fs/promises"
import { join, relative, resolve } from "node:path"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    target: { type: "string" },
    outdir: { type: "string", default: "dist" },
    program: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
})
if (values.help) {
  console.log(
    "usage: bun scripts/build.ts [--target bun-linux-x64|bun-linux-arm64] [--outdir dist] [--program chimera-agent|chimera]",
  )
  process.exit(0)
}

const root = join(import.meta.dir, "..")
// An absolute --outdir is taken as given, a relative one from the repository root.
const outdir = resolve(root, values.outdir)
const PROGRAMS = [
  { entry: "agent/main.ts", out: "chimera-agent", bytecode: false },
  { entry: "control/main.ts", out: "chimera", bytecode: true },
]
const programs = PROGRAMS.filter((p) => values.program === undefined || p.out === values.program)
if (programs.length === 0) {
  console.error(
    `build: --program: expected ${PROGRAMS.map((p) => p.out).join(" or ")}, got ${JSON.stringify(values.program)}`,
  )
  process.exit(2)
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

let failed = 0
for (const { entry, out, bytecode } of programs) {
  const source = join(root, entry)
  const outfile = join(outdir, out)
  if (!(await Bun.file(source).exists())) {
    console.error(`build: ${entry} does not exist`)
    failed++
    continue
  }
  const started = performance.now()
  const args = [
    process.execPath,
    "build",
    "--compile",
    "--minify-whitespace",
    "--minify-syntax",
    "--sourcemap",
    // A compiled Bun program would otherwise read `.env` and `bunfig.toml` from whatever directory it
    // is started in, and a bunfig's `preload` runs code: `chimera status` in a cloned repository would
    // run that repository's script with the operator's token, and the agent (root) whatever its
    // working directory holds. Neither program reads either file on purpose.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    ...(bytecode ? ["--bytecode", "--format=esm"] : []),
    ...(values.target ? [`--target=${values.target}`] : []),
    source,
    "--outfile",
    outfile,
  ]
  const proc = Bun.spawn(args, { cwd: root, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  if (code !== 0) {
    console.error(`build: ${entry} failed (bun build exited ${code}):\n${(stderr || stdout).trim()}`)
    failed++
    continue
  }
  // The source maps are embedded in the executable; the copies bun also writes beside it (the program's,
  // and one per chunk of the web dashboard's bundle) are not needed.
  await rm(`${outfile}.map`, { force: true })
  for (const map of new Bun.Glob("chunk-*.js.map").scanSync(outdir)) await rm(join(outdir, map), { force: true })
  const ms = Math.round(performance.now() - started)
  console.log(`${relative(root, outfile).padEnd(20)} ${mib(statSync(outfile).size).padStart(10)}  (${entry}, ${ms} ms)`)
}
process.exit(failed > 0 ? 1 : 0)
