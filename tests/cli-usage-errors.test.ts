// A mistyped command is answered in plain words: citty's own messages colour the name it did not
// know, and that colour must neither show up as escaped text (`\x1b[36mbogus\x1b[39m`) where colour is
// off, nor reach a terminal when NO_COLOR is set. The real CLI process, its stderr read as it is.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CONFIG_STATUS, USAGE_STATUS } from "../control/cli/errors.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
// A home of the tests' own: commands that keep records make ~/.local/share/chimera in it.
let home: string
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "chimera-usage-home-"))
})
afterAll(async () => {
  await rm(home, { recursive: true, force: true })
})

test("an unknown command or subcommand is named plainly, with no escape codes, coloured or escaped", async () => {
  const env = { NO_COLOR: undefined, FORCE_COLOR: undefined }
  for (const args of [["bogus"], ["notify", "bogus"], ["nodes", "bogus"]]) {
    const r = await run([process.execPath, MAIN, ...args], { env })
    expect({ args, code: r.code }).toEqual({ args, code: USAGE_STATUS })
    expect(r.stderr).toContain("Unknown command bogus")
    expect(r.stderr).not.toContain("\\x1b")
    expect(r.stderr).not.toContain("\x1b")
  }
}, 60_000)

test("an unknown command close to a real one names it", async () => {
  for (const [args, unknown, near] of [
    [["node", "list"], "node", "nodes"],
    [["nodes", "lst"], "lst", "list"],
    [["deploymnets"], "deploymnets", "deployments"],
  ] as const) {
    const r = await run([process.execPath, MAIN, ...args], { env: { NO_COLOR: "1" } })
    expect({ args, code: r.code }).toEqual({ args, code: USAGE_STATUS })
    // One line, not the whole usage before it (which pushed the suggestion off the screen).
    const where = ["chimera", ...args.slice(0, (args as readonly string[]).indexOf(unknown))].join(" ")
    expect(r.stderr.trim()).toBe(`error Unknown command ${unknown} (did you mean ${near}?); see ${where} --help`)
  }
}, 60_000)

test("`chimera help [COMMAND…]` prints the usage --help prints", async () => {
  for (const args of [[], ["nodes"], ["nodes", "run"]]) {
    const help = await run([process.execPath, MAIN, "help", ...args], { env: { NO_COLOR: "1" } })
    const flag = await run([process.execPath, MAIN, ...args, "--help"], { env: { NO_COLOR: "1" } })
    expect({ args, code: help.code, stdout: help.stdout }).toEqual({ args, code: 0, stdout: flag.stdout })
    expect(help.stdout).toContain("USAGE")
  }
}, 60_000)

test("a command named like a property every object has is unknown, not run (citty looks names up with `in`)", async () => {
  for (const args of [["toString"], ["constructor"], ["nodes", "hasOwnProperty"]]) {
    const r = await run([process.execPath, MAIN, ...args], { env: { NO_COLOR: "1" } })
    expect({ args, code: r.code }).toEqual({ args, code: USAGE_STATUS })
    expect(r.stderr).toContain(`Unknown command ${args.at(-1)}`)
  }
}, 60_000)

test("a flag the command does not define is refused before anything runs, with the nearest flag named", async () => {
  const env = { NO_COLOR: "1" }
  // `--dryrun` for `--dry-run`: citty alone would drop it and deploy for real.
  const deploy = await run(
    [process.execPath, MAIN, "deploy", "--targets", "root@127.0.0.1", "--config", "/x.nix", "--dryrun"],
    { env },
  )
  expect(deploy.code).toBe(USAGE_STATUS)
  expect(deploy.stdout).toBe("")
  expect(deploy.stderr).toContain(
    "unknown option --dryrun (did you mean --dry-run?) for chimera deploy; see chimera deploy --help",
  )
  const list = await run([process.execPath, MAIN, "nodes", "list", "--jsn"], { env })
  expect({ code: list.code, stderr: list.stderr.trim() }).toEqual({
    code: USAGE_STATUS,
    stderr: "error unknown option --jsn (did you mean --json?) for chimera nodes list; see chimera nodes list --help",
  })
  // Before the command's name a flag is the parent's, which citty would drop as well.
  const early = await run([process.execPath, MAIN, "--json", "nodes", "list"], { env })
  expect(early.code).toBe(USAGE_STATUS)
  expect(early.stderr).toContain(
    "unknown option --json for chimera; see chimera --help (a command's options go after its name)",
  )
  // A boolean's negation and a flag's `=value` are the command's own; so is all after `--`.
  const negated = await run([process.execPath, MAIN, "deploy", "--no-dry-run", "--targets=x", "--config", "/x.nix"], {
    env,
  })
  expect(negated.stderr).not.toContain("unknown option")
  expect(negated.stderr).toContain("no Nix config at /x.nix")
}, 60_000)

test("a node name or tag given with no configuration loaded says that no configuration is in use", async () => {
  // A newcomer in a new shell without CHIMERA_CONFIG_FILE: the name is dialled as a host, the tag is
  // unknown; both say that the inventory was never read. An address, or a configuration, says nothing.
  const env = { NO_COLOR: "1", CHIMERA_CONFIG_FILE: "", SSH_AUTH_SOCK: "", HOME: home }
  const hint = "no configuration is in use (CHIMERA_CONFIG_FILE is unset)"
  const tag = await run([process.execPath, MAIN, "exec", "--targets", "@db", "--", "true"], { env })
  expect(tag.code).toBe(USAGE_STATUS)
  expect(tag.stderr).toContain(`target "@db": no node in the inventory has tag "db"`)
  expect(tag.stderr).toContain(hint)
  const name = await run([process.execPath, MAIN, "exec", "--targets", "web-1", "--", "true"], { env })
  expect(name.stderr).toContain(`warning "web-1" taken as host name: ${hint}`)
  const address = await run([process.execPath, MAIN, "exec", "--targets", "root@127.0.0.1:9", "--", "true"], { env })
  expect(address.stderr).not.toContain(hint)
}, 60_000)

test("generations keeps its table narrow when a target fails, and says why below it, once", async () => {
  const env = { NO_COLOR: "1", CHIMERA_CONFIG_FILE: "", SSH_AUTH_SOCK: "", HOME: home }
  const r = await run([process.execPath, MAIN, "generations", "--targets", "root@127.0.0.1:1", "--timeout", "5"], {
    env,
  })
  expect(r.code).toBe(1)
  expect(r.stdout.split("\n")[1]).toMatch(/^root@127\.0\.0\.1:1\s+-\s+-\s+-\s+failed$/)
  expect(Math.max(...r.stdout.split("\n").map((l) => l.length))).toBeLessThan(60)
  expect(r.stderr).toStartWith("✗ root@127.0.0.1:1: no SSH key")
  expect(r.stderr.split("root@127.0.0.1:1").length).toBe(2)
}, 60_000)

test("a subcommand's help names the whole command one types", async () => {
  for (const [args, usage] of [
    [["nodes", "show", "--help"], "USAGE chimera nodes show [OPTIONS] <ID>"],
    [["users", "add", "--help"], "USAGE chimera users add"],
    [["nodes", "--help"], "USAGE chimera nodes "],
  ] as const) {
    const r = await run([process.execPath, MAIN, ...args], { env: { NO_COLOR: "1" } })
    expect({ args, code: r.code }).toEqual({ args, code: 0 })
    expect(r.stdout).toContain(usage)
  }
}, 60_000)

test("a missing Nix file is named with where its path came from, by deploy and watch as by run", async () => {
  // A newcomer who leaves out --config builds ./default.nix: the error says which flag and setting
  // choose another, not only the path.
  const env = { NO_COLOR: "1", CHIMERA_CONFIG_FILE: "", SSH_AUTH_SOCK: "", HOME: home }
  const hint = `no Nix config at ${home}/default.nix (--config or nix.config_path; this one from defaults)`
  for (const args of [
    ["deploy", "--targets", "root@127.0.0.1:9"],
    ["watch", "--once", "--targets", "root@127.0.0.1:9"],
    ["run", "--", "true"],
  ]) {
    const r = await run([process.execPath, MAIN, ...args], { env, cwd: home })
    // `watch --once`'s 1 means healed: its configuration failing is EX_CONFIG (tests/watch-cli.test.ts).
    const code = args[0] === "watch" ? CONFIG_STATUS : 1
    expect({ args, code: r.code, stderr: r.stderr.trim() }).toEqual({ args, code, stderr: `error ${hint}` })
  }
}, 60_000)

test("a --limit out of range is named as the flag typed, before any request", async () => {
  for (const args of [
    ["audit", "--limit", "-1"],
    ["audit", "--limit", "many"],
    ["incidents", "--limit", "0"],
  ]) {
    const r = await run([process.execPath, MAIN, ...args], { env: { NO_COLOR: "1", HOME: home } })
    expect({ args, code: r.code }).toEqual({ args, code: USAGE_STATUS })
    expect(r.stderr).toMatch(/^error --limit: expected a whole number from 1 to \d+\n$/)
  }
}, 60_000)

test("a --port that is no number is quoted as typed, by web as by mcp (web said `got NaN`)", async () => {
  const env = { NO_COLOR: "1", HOME: home, CHIMERA_CONFIG_FILE: "", CHIMERA_DATA_DIR: join(home, "data") }
  for (const [command, typed, shown] of [
    ["web", "abc", '"abc"'],
    ["web", "", '""'],
    ["mcp", "abc", '"abc"'],
  ] as const) {
    const r = await run([process.execPath, MAIN, command, "--port", typed], { env })
    expect({ command, typed, code: r.code, stderr: r.stderr }).toEqual({
      command,
      typed,
      code: USAGE_STATUS,
      stderr: `error config: ${command}.port: expected an integer from 1 to 65535, got ${shown} (from --port)\n`,
    })
  }
}, 60_000)

test("no flag's help gives its default twice, and all say it one way (citty adds `(Default: X)` to a flag that has one)", async () => {
  const commands = ["web", "exec", "deploy", "rollback", "generations", "watch", "run", "dash", "mcp", "deployments"]
  for (const command of commands) {
    const r = await run([process.execPath, MAIN, command, "--help"], { env: { NO_COLOR: "1" } })
    expect({ command, code: r.code }).toEqual({ command, code: 0 })
    const lines = r.stdout.split("\n")
    const twice = lines.filter((line) => /\(default\b.*\(default /i.test(line))
    expect({ command, twice }).toEqual({ command, twice: [] })
    expect({ command, citty: lines.filter((line) => line.includes("(Default: ")) }).toEqual({ command, citty: [] })
    expect({ command, padded: lines.filter((line) => line !== line.trimEnd()) }).toEqual({ command, padded: [] })
  }
}, 60_000)

test("a usage mistake exits 64 (EX_USAGE), apart from every outcome a command reports, and runs nothing", async () => {
  // `watch --once` from cron: 1 means drift was found and healed, 2 not healed. A typo in the job's
  // own line exited 1 too, and read as "healed"; its configuration failing is 78 (EX_CONFIG).
  const env = { NO_COLOR: "1", HOME: home, CHIMERA_CONFIG_FILE: "", CHIMERA_DATA_DIR: join(home, "data") }
  for (const args of [
    ["watch", "--once", "--targts", "root@127.0.0.1:9"],
    ["watch", "--once", "--targets", "root@127.0.0.1:9", "--confirm-timeout", "soon"],
    ["chat", "-q", "hi", "--modle", "x"],
    ["nodes", "show"],
    ["events", "--limit", "0"],
    ["web", "--port", "none"],
    ["bogus"],
  ]) {
    const r = await run([process.execPath, MAIN, ...args], { env, cwd: home })
    expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 64, stdout: "" })
  }
  const missing = await run([process.execPath, MAIN, "watch", "--once", "--targets", "root@127.0.0.1:9"], {
    env,
    cwd: home,
  })
  expect(missing.code).toBe(CONFIG_STATUS)
}, 60_000)

test("words past the arguments a command takes are refused before anything runs (citty dropped them)", async () => {
  const env = { NO_COLOR: "1", HOME: home, CHIMERA_CONFIG_FILE: "", CHIMERA_DATA_DIR: join(home, "data") }
  for (const [args, shown] of [
    // Before: the first token alone was revoked, and the command exited 0.
    [["tokens", "revoke", "id-1", "id-2"], 'unexpected argument "id-2" for chimera tokens revoke (it takes ID)'],
    // Words after `--`, and a word citty reads as a flag `-2`: it dropped them as well, and revoked id-1.
    [["tokens", "revoke", "id-1", "--", "id-2"], 'unexpected argument "id-2" for chimera tokens revoke (it takes ID)'],
    [["tokens", "revoke", "--", "id-1", "id-2"], 'unexpected argument "id-2" for chimera tokens revoke (it takes ID)'],
    [["nodes", "revoke", "web-1", "-2"], 'unexpected argument "-2" for chimera nodes revoke (it takes ID)'],
    [["nodes", "list", "web-1"], 'unexpected argument "web-1" for chimera nodes list (it takes none)'],
    [["sessions", "kill", "a", "b", "--json"], 'unexpected argument "b" for chimera sessions kill (it takes NAME)'],
    [["sessions", "kill", "a", "b"], 'unexpected argument "b" for chimera sessions kill (it takes NAME)'],
    [["deployments", "show", "x", "y"], 'unexpected argument "y" for chimera deployments (it takes ACTION ID)'],
    [["deployments", "x", "y"], 'unexpected argument "y": one deployment at a time'],
  ] as const) {
    const r = await run([process.execPath, MAIN, ...args], { env })
    expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 64, stdout: "" })
    expect(r.stderr).toContain(shown)
  }
  // A command line to run takes every word; `show ID` is two.
  for (const args of [
    ["exec", "--targets", "root@127.0.0.1:9", "--timeout", "1", "echo", "hi", "there"],
    ["deployments", "show", "20260101000000-00000000"],
  ]) {
    const r = await run([process.execPath, MAIN, ...args], { env })
    expect({ args, code: r.code, unexpected: r.stderr.includes("unexpected argument") }).toEqual({
      args,
      code: 1,
      unexpected: false,
    })
  }
}, 60_000)

test("audit's filters are named as the flags typed, before any request (not as the API's query.since)", async () => {
  // No control plane anywhere: the flag is refused before the CLI looks for one.
  const env = { NO_COLOR: "1", HOME: home, CHIMERA_DATA_DIR: join(home, "data"), CHIMERA_URL: "http://127.0.0.1:9" }
  for (const [flag, value, shown] of [
    ["--since", "yesterday", "--since: expected an ISO 8601 UTC time, e.g. 2026-12-01T00:00:00Z"],
    ["--result", "fine", '--result: Invalid option: expected one of "ok"|"denied"|"rate-limited"|"failed"|"started"'],
    ["--node", "bad name", "--node: expected a node id"],
  ]) {
    const r = await run([process.execPath, MAIN, "audit", flag!, value!], { env })
    expect({ flag, code: r.code, stderr: r.stderr }).toEqual({
      flag,
      code: 64,
      stderr: expect.stringContaining(`error ${shown}`),
    })
  }
}, 60_000)

test("rollback's --generation and deploy's checks are refused before anything connects, each under its flag", async () => {
  const env = { NO_COLOR: "1", HOME: home, CHIMERA_CONFIG_FILE: "", CHIMERA_DATA_DIR: join(home, "data") }
  const target = ["--targets", "root@127.0.0.1:9"]
  const generation = "error --generation: expected a generation number (see chimera generations)\n"
  for (const [args, stderr] of [
    // Before: 1e23 reached the node as `nix-env --switch-generation 1e+23`; 0x10 and " 5" were 16 and 5.
    [["rollback", ...target, "--generation", "99999999999999999999999"], generation],
    [["rollback", ...target, "--generation", "0x10"], generation],
    [["rollback", ...target, "--generation", " 5"], generation],
    // Before: `Too small: expected string to have >=1 characters`, naming no flag.
    [
      ["deploy", ...target, "--config", "/x.nix", "--health-cmd", ""],
      "error --health-cmd: expected a command, not an empty one\n",
    ],
    // Before: the range and, joined to it, the timeouts' order, which the range had not let be checked.
    [["deploy", ...target, "--config", "/x.nix", "--confirm-timeout", "0"], "error --confirm-timeout: at least 5\n"],
  ] as const) {
    const r = await run([process.execPath, MAIN, ...args], { env, cwd: home })
    expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 64, stderr })
  }
}, 60_000)

test("an --after past any event id is named as the flag typed (was the API's `query.after: Too big`)", async () => {
  const env = { NO_COLOR: "1", HOME: home, CHIMERA_DATA_DIR: join(home, "data"), CHIMERA_URL: "http://127.0.0.1:9" }
  const r = await run([process.execPath, MAIN, "events", "--after", "99999999999999999999"], { env })
  expect({ code: r.code, stderr: r.stderr }).toEqual({
    code: 64,
    stderr: "error --after: expected an event id (a whole number, from the ID column)\n",
  })
}, 60_000)
