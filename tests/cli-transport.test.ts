// Where the real CLI sends credentials, against a real control plane: over plain HTTP only to this
// machine, unless CHIMERA_ALLOW_HTTP=1; the local admin token only to a loopback URL. A refusal comes
// before any connection, so its error names the rule, not an unreachable host. Off-machine addresses
// here are never dialled: 10.255.255.1 is refused before connecting, and the address the CLI does not
// take for loopback ([::ffff:127.0.0.1], IPv4-mapped) still reaches only this machine.
import { describe, expect, test } from "bun:test"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startInProcess } from "./support/control-plane.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const REFUSED = "over plain HTTP: anyone on the way could read them and act as you"

async function withHome<T>(body: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), "chimera-transport-"))
  try {
    return await body(home)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}

const chimera = (args: string[], env: Record<string, string>, stdin?: string) =>
  run([process.execPath, MAIN, ...args], {
    env: { CHIMERA_TOKEN: "", CHIMERA_ALLOW_HTTP: "", CHIMERA_CONFIG_FILE: "", XDG_CONFIG_HOME: "", ...env },
    stdin,
  })

describe("the CLI's transport", () => {
  test("no token or password goes over plain HTTP to another host, and nothing is dialled", async () => {
    await withHome(async (home) => {
      const env = { HOME: home, CHIMERA_DATA_DIR: join(home, "data"), CHIMERA_URL: "http://10.255.255.1:1" }
      for (const args of [
        ["nodes", "list"],
        ["events", "--follow"],
        ["audit"],
        ["users", "list"],
        ["mcp"],
        ["mcp", "--stdio"],
      ]) {
        const r = await chimera(args, { ...env, CHIMERA_TOKEN: "chm_api_0123456789abcdef0123456789abcdef" })
        expect({ args, code: r.code }).toEqual({ args, code: 1 })
        expect(r.stderr).toContain(`refusing to send credentials to http://10.255.255.1:1 ${REFUSED}`)
        expect(r.stderr).not.toContain("cannot reach")
      }
      // The password is not even asked for.
      const login = await chimera(["login", "alice", "--password-stdin"], env, "a password\n")
      expect(login.code).toBe(1)
      expect(login.stderr).toContain(REFUSED)
      // A session kept for such a URL (by an older version) is forgotten on logout, not sent to revoke.
      const kept = join(home, ".config", "chimera")
      mkdirSync(kept, { recursive: true, mode: 0o700 })
      const token = {
        url: "http://10.255.255.1:1",
        token: "chm_api_0123456789abcdef",
        expiresAt: "2099-01-01T00:00:00Z",
      }
      writeFileSync(join(kept, "token"), JSON.stringify(token), { mode: 0o600 })
      const logout = await chimera(["logout"], env)
      expect({ code: logout.code, out: logout.stdout }).toEqual({ code: 0, out: "Logged out.\n" })
      expect(logout.stderr).toContain("forgetting the token without revoking it")
      expect(existsSync(join(kept, "token"))).toBe(false)
      // A value that is neither 0 nor 1 is a mistake, not a yes.
      const typo = await chimera(["nodes", "list"], {
        ...env,
        CHIMERA_TOKEN: "x".repeat(20),
        CHIMERA_ALLOW_HTTP: "yes",
      })
      expect(typo.stderr).toContain("CHIMERA_ALLOW_HTTP: expected 1")
    })
  }, 60_000)

  test("the local admin token is only used on its own for a loopback URL", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      // On this machine, at a loopback address: the admin token in the data dir is picked up.
      const local = await chimera(["nodes", "list", "--json"], {
        HOME: home,
        CHIMERA_DATA_DIR: cp.dataDir,
        CHIMERA_URL: cp.url,
      })
      expect({ code: local.code, stderr: local.stderr }).toEqual({ code: 0, stderr: "" })
      // Any other URL, https included: the admin token stays home.
      const remote = await chimera(["nodes", "list"], {
        HOME: home,
        CHIMERA_DATA_DIR: cp.dataDir,
        CHIMERA_URL: "https://10.255.255.1:1",
      })
      expect(remote.code).toBe(1)
      expect(remote.stderr).toContain("no token for https://10.255.255.1:1")
      expect(remote.stderr).toContain("is used on its own only for a control plane at a loopback address")
      const mapped = cp.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")
      const allowed = await chimera(["nodes", "list"], {
        HOME: home,
        CHIMERA_DATA_DIR: cp.dataDir,
        CHIMERA_URL: mapped,
        CHIMERA_ALLOW_HTTP: "1",
      })
      expect(allowed.code).toBe(1)
      expect(allowed.stderr).toContain(`no token for ${mapped}`)
    })
  }, 60_000)

  test("CHIMERA_ALLOW_HTTP=1 lets an explicit token over plain HTTP; loopback http needs nothing", async () => {
    await using cp = await startInProcess()
    await withHome(async (home) => {
      const mapped = cp.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")
      const env = { HOME: home, CHIMERA_DATA_DIR: join(home, "data"), CHIMERA_TOKEN: cp.adminToken }
      const refused = await chimera(["nodes", "list", "--json"], { ...env, CHIMERA_URL: mapped })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(`refusing to send credentials to ${mapped} ${REFUSED}`)
      const allowed = await chimera(["nodes", "list", "--json"], {
        ...env,
        CHIMERA_URL: mapped,
        CHIMERA_ALLOW_HTTP: "1",
      })
      expect({ code: allowed.code, nodes: JSON.parse(allowed.stdout).nodes }).toEqual({ code: 0, nodes: [] })
      const loopback = await chimera(["nodes", "list", "--json"], { ...env, CHIMERA_URL: cp.url })
      expect({ code: loopback.code, stderr: loopback.stderr }).toEqual({ code: 0, stderr: "" })
    })
  }, 60_000)
})
