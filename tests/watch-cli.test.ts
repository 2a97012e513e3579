// `watch --once` from cron: 0 congruent, 1 healed, 2 not healed, 64 a mistake in the job's command
// line. A configuration that fails before any node is checked (the Nix file does not build or is
// missing, the chimera configuration is refused) exited 1 and read as "healed"; it exits 78
// (EX_CONFIG). Real nix-build of a derivation whose builder fails; the target is never dialled. And
// watch's -i is the SSH key file, as on every SSH command.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CONFIG_STATUS } from "../control/cli/errors.ts"
import { requireTool, run } from "./support/tools.ts"

requireTool("nix-build")
const MAIN = join(import.meta.dir, "../control/main.ts")
let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-watch-status-"))
  await writeFile(
    join(dir, "broken.nix"),
    'derivation { name = "chimera-watch-broken"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo this system does not build >&2; exit 3" ]; }\n',
  )
  await writeFile(join(dir, "bad-setting.toml"), "[watch]\nsession_name = 5\n")
  await writeFile(join(dir, "bad-toml.toml"), "not = [toml\n")
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const watchOnce = (args: string[], env: Record<string, string> = {}) =>
  run([process.execPath, MAIN, "watch", "--once", "--targets", "root@127.0.0.1:9", ...args], {
    cwd: dir,
    env: {
      NO_COLOR: "1",
      HOME: dir,
      SSH_AUTH_SOCK: "",
      CHIMERA_CONFIG_FILE: "",
      CHIMERA_DATA_DIR: join(dir, "data"),
      ...env,
    },
  })

test("a Nix file that does not build exits 78, says what Nix said, and checks no node", async () => {
  const r = await watchOnce(["--config", "broken.nix"])
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code: CONFIG_STATUS, stdout: "" })
  expect(r.stderr).toContain(`error nix-build ${join(dir, "broken.nix")} failed`)
  expect(r.stderr).toContain("this system does not build")
  expect(r.stderr).not.toContain("127.0.0.1")
}, 60_000)

test("a missing Nix file or a refused chimera configuration exits 78, not 1", async () => {
  for (const [args, env, said] of [
    [["--config", "absent.nix"], {}, `no Nix config at ${join(dir, "absent.nix")}`],
    [[], {}, `no Nix config at ${join(dir, "default.nix")}`],
    [["--config", "broken.nix"], { CHIMERA_CONFIG_FILE: "bad-setting.toml" }, "watch.session_name: expected a string"],
    [["--config", "broken.nix"], { CHIMERA_CONFIG_FILE: "bad-toml.toml" }, "invalid TOML"],
    [["--config", "broken.nix"], { CHIMERA_CONFIG_FILE: "absent.toml" }, "cannot read"],
  ] as const) {
    const r = await watchOnce([...args], env)
    expect({ args, env, code: r.code, stdout: r.stdout }).toEqual({ args, env, code: CONFIG_STATUS, stdout: "" })
    expect(r.stderr).toStartWith("error ")
    expect(r.stderr).toContain(said)
  }
}, 60_000)

test("another failure before the pass ran exits 2 (not healed), and a typo still 64", async () => {
  const db = await watchOnce(["--config", "broken.nix"], { CHIMERA_DB: "mysql://nowhere" })
  expect({ code: db.code, stderr: db.stderr }).toEqual({
    code: 2,
    stderr: 'error unsupported database URL "mysql://nowhere" (CHIMERA_DB): use sqlite://PATH or postgres://…\n',
  })
  const typo = await watchOnce(["--config", "broken.nix", "--intervall", "5"])
  expect(typo.code).toBe(64)
  // A schedule --once does not use is still checked: before, it went unread and the pass ran.
  const schedule = await watchOnce(["--config", "broken.nix", "--schedule", "bad cron"])
  expect({ code: schedule.code, stderr: schedule.stderr }).toEqual({
    code: 64,
    stderr: "error --schedule: Unknown alias: bad\n",
  })
}, 60_000)

test("-i is the key file on watch as on every SSH command; `watch -i 30` is told to write --interval 30", async () => {
  // Before: -i was watch's --interval, so `watch -i ~/.ssh/key` was refused as a number of seconds.
  const key = join(dir, "id_ed25519")
  await writeFile(key, "a key file", { mode: 0o600 })
  const withKey = await watchOnce(["-i", key, "--config", "broken.nix"])
  expect(withKey.code).toBe(CONFIG_STATUS) // past the flags, to the build
  const noKey = await watchOnce(["-i", join(dir, "absent_key"), "--config", "broken.nix"])
  expect({ code: noKey.code, stderr: noKey.stderr }).toEqual({
    code: 64,
    stderr: `error --identity: cannot read ${join(dir, "absent_key")}\n`,
  })
  const oldInterval = await watchOnce(["-i", "30", "--config", "broken.nix"])
  expect({ code: oldInterval.code, stderr: oldInterval.stderr }).toEqual({
    code: 64,
    stderr:
      "error -i is --identity (an SSH key file, as with ssh -i), and there is no file 30; for seconds between checks, write --interval 30\n",
  })
  const help = await run([process.execPath, MAIN, "watch", "--help"], { env: { NO_COLOR: "1" } })
  expect(help.stdout).toMatch(/ -i, --identity=<identity> /)
  expect(help.stdout).not.toMatch(/-i, --interval/)
}, 60_000)
