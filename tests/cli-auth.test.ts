// The trust commands end to end: `chimera users`, `login` (token kept 0600 and used by later
// commands), `tokens`, `audit --json` and `--export`, against a real control plane.
import { describe, expect, test } from "bun:test"
import {
  chmodSync,
  chownSync,
  closeSync,
  lchownSync,
  openSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { USAGE_STATUS } from "../control/cli/errors.ts"
import { addUser } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

describe("chimera login, users, tokens, audit", () => {
  test("an admin adds a user; the user logs in and later commands use the stored session", async () => {
    await using cp = await startInProcess()
    const home = await mkdtemp(join(tmpdir(), "chimera-cli-home-"))
    try {
      const chimera = (args: string[], opts: { stdin?: string; token?: string } = {}) =>
        run([process.execPath, MAIN, ...args], {
          stdin: opts.stdin,
          env: {
            HOME: home,
            XDG_CONFIG_HOME: "",
            CHIMERA_URL: cp.url,
            CHIMERA_TOKEN: opts.token ?? "",
            // Not the control plane's data dir: the CLI must not fall back to its admin token.
            CHIMERA_DATA_DIR: join(home, "data"),
          },
        })
      const admin = { token: cp.adminToken }

      const added = await chimera(["users", "add", "ops", "--role", "operator", "--password-stdin", "--json"], {
        ...admin,
        stdin: "a long ops password\n",
      })
      expect(added.code).toBe(0)
      expect(JSON.parse(added.stdout)).toMatchObject({ username: "ops", role: "operator" })
      const users = JSON.parse((await chimera(["users", "list", "--json"], admin)).stdout) as { users: unknown[] }
      expect(users.users).toHaveLength(1)

      expect((await chimera(["nodes", "list", "--json"])).code).toBe(1)
      const wrong = await chimera(["login", "ops", "--password-stdin"], { stdin: "nope nope nope\n" })
      expect(wrong.code).toBe(1)
      expect(wrong.stderr).toContain("wrong password")
      // A login sends no credential, so a refused password says nothing of the one the CLI would use.
      const wrongBesideToken = await chimera(["login", "ops", "--password-stdin"], {
        ...admin,
        stdin: "nope nope nope\n",
      })
      expect(wrongBesideToken.code).toBe(1)
      expect(wrongBesideToken.stderr).toContain("wrong password")
      expect(wrongBesideToken.stderr).not.toContain("CHIMERA_TOKEN")
      const login = await chimera(["login", "ops", "--password-stdin", "--json"], { stdin: "a long ops password\n" })
      expect(login.code).toBe(0)
      expect(login.stdout).not.toContain("eyJ")
      const tokenFile = join(home, ".config", "chimera", "token")
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
      expect(JSON.parse(readFileSync(tokenFile, "utf8")).url).toBe(cp.url)
      expect((await chimera(["nodes", "list", "--json"])).code).toBe(0)
      // An operator may not manage tokens; the refusal says the login session is who acted.
      const refused = await chimera(["tokens", "list"])
      expect(refused.stderr).toContain("403")
      expect(refused.stderr).toContain(`this was the login stored in ${tokenFile}, which takes over`)

      const created = JSON.parse(
        (await chimera(["tokens", "create", "ci", "--role", "viewer", "--ttl-days", "7", "--json"], admin)).stdout,
      ) as { id: string; token: string }
      expect(created.token).toStartWith("chm_api_")
      const listed = (await chimera(["tokens", "list", "--json"], admin)).stdout
      expect(listed).toContain('"ci"')
      expect(listed).not.toContain(created.token)
      expect((await chimera(["nodes", "list"], { token: created.token })).code).toBe(0)
      expect((await chimera(["tokens", "revoke", created.id], admin)).code).toBe(0)
      const revoked = await chimera(["nodes", "list"], { token: created.token })
      expect(revoked.code).toBe(1)
      // Which credential went where: a token from another control plane is the usual cause.
      expect(revoked.stderr).toContain(`sent the CHIMERA_TOKEN (environment) to ${cp.url}`)

      const audit = JSON.parse((await chimera(["audit", "--json"], admin)).stdout) as { entries: { action: string }[] }
      expect(audit.entries.map((e) => e.action)).toEqual(
        expect.arrayContaining([
          "POST /api/users",
          "POST /api/auth/login",
          "POST /api/tokens",
          "DELETE /api/tokens/:id",
        ]),
      )
      const file = join(home, "audit.jsonl")
      expect((await chimera(["audit", "--export", file], admin)).code).toBe(0)
      const lines = readFileSync(file, "utf8").trim().split("\n")
      expect(lines).toHaveLength(audit.entries.length)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      expect(readFileSync(file, "utf8")).not.toContain("a long ops password")
      // A file left open to others at the path is replaced by one of this user's alone, not written into;
      // one another user owns is refused and stays as it was.
      chmodSync(file, 0o666)
      expect((await chimera(["audit", "--export", file], admin)).code).toBe(0)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      const planted = join(home, "planted.jsonl")
      writeFileSync(planted, "", { mode: 0o666 })
      chownSync(planted, 65534, 65534)
      const refusedExport = await chimera(["audit", "--export", planted], admin)
      expect(refusedExport.code).toBe(USAGE_STATUS)
      expect(refusedExport.stderr).toContain(`--export: ${planted} exists and belongs to uid 65534`)
      expect(readFileSync(planted, "utf8")).toBe("")
      // A path in no directory is a usage error that says so, not a raw ENOENT.
      const nowhere = await chimera(["audit", "--export", join(home, "missing", "audit.jsonl")], admin)
      expect({ code: nowhere.code, stderr: nowhere.stderr }).toEqual({
        code: USAGE_STATUS,
        stderr: expect.stringContaining("no such directory to make the file in"),
      })
      expect(nowhere.stderr).not.toContain("unexpected failure")
      // A device is written to, never replaced; a link is refused, not followed.
      expect((await chimera(["audit", "--export", "/dev/null"], admin)).code).toBe(0)
      expect(statSync("/dev/null").isCharacterDevice()).toBe(true)
      const link = join(home, "link.jsonl")
      symlinkSync(planted, link)
      const linked = await chimera(["audit", "--export", link], admin)
      expect(linked.stderr).toContain(`--export: ${link} is not a regular file`)
      expect(readFileSync(planted, "utf8")).toBe("")
      // A pipe another user made at the path (its reader waiting for the log) is refused, and so is a
      // link of theirs to a device; one's own link to a device (as /dev/stdout is) still works.
      const pipe = join(home, "pipe.jsonl")
      await run(["mkfifo", "-m", "666", pipe])
      chownSync(pipe, 65534, 65534)
      const reader = Bun.spawn(["cat", pipe], { stdout: "pipe" })
      const piped = await chimera(["audit", "--export", pipe], admin)
      reader.kill()
      expect(piped.code).toBe(USAGE_STATUS)
      expect(piped.stderr).toContain(`--export: ${pipe} belongs to uid 65534, not to you`)
      expect(await new Response(reader.stdout).text()).toBe("")
      const deviceLink = join(home, "device.jsonl")
      symlinkSync("/dev/null", deviceLink)
      lchownSync(deviceLink, 65534, 65534)
      const viaLink = await chimera(["audit", "--export", deviceLink], admin)
      expect(viaLink.code).toBe(USAGE_STATUS)
      expect(viaLink.stderr).toContain(`--export: ${deviceLink} belongs to uid 65534, not to you`)
      const ownLink = join(home, "own-device.jsonl")
      symlinkSync("/dev/null", ownLink)
      expect((await chimera(["audit", "--export", ownLink], admin)).code).toBe(0)

      // A role change ends the login's session; the refusal says how to get out of it.
      expect((await chimera(["users", "set-role", "ops", "viewer"], admin)).code).toBe(0)
      const stale = await chimera(["nodes", "list"])
      expect(stale.code).toBe(1)
      expect(stale.stderr).toContain("the session was revoked")
      expect(stale.stderr).toContain(`this was the login stored in ${tokenFile}`)
      expect(stale.stderr).toContain("`chimera logout`")

      expect((await chimera(["logout"])).code).toBe(0)
      expect((await chimera(["nodes", "list"])).code).toBe(1)

      // Something else at CHIMERA_URL (a web server, another program): said as such.
      const other = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        fetch: () => new Response("not here", { status: 404 }),
      })
      try {
        const elsewhere = await run([process.execPath, MAIN, "nodes", "list"], {
          env: { HOME: home, CHIMERA_URL: other.url.origin, CHIMERA_TOKEN: cp.adminToken },
        })
        expect(elsewhere.stderr).toContain(`${other.url.origin} answered 404, not as a Chimera control plane does`)
      } finally {
        await other.stop(true)
      }
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)

  test("--export /dev/stdout writes into the pipe the CLI was given, whoever made it (sudo chimera … | gzip)", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "ops", "operator")
    const home = await mkdtemp(join(tmpdir(), "chimera-cli-home-"))
    try {
      // The invoking user's pipe, as under `sudo chimera audit --export /dev/stdout | gzip`: made by
      // them, not by root. A FIFO of theirs stands for it.
      const pipe = join(home, "stdout.fifo")
      await run(["mkfifo", "-m", "600", pipe])
      chownSync(pipe, 65534, 65534)
      const reader = Bun.spawn(["cat", pipe], { stdout: "pipe" })
      const stdout = openSync(pipe, "w")
      const cli = Bun.spawn([process.execPath, MAIN, "audit", "--export", "/dev/stdout"], {
        env: { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, CHIMERA_DATA_DIR: join(home, "data") },
        stdin: "ignore",
        stdout,
        stderr: "pipe",
      })
      closeSync(stdout)
      const [code, stderr, exported] = await Promise.all([
        cli.exited,
        new Response(cli.stderr).text(),
        new Response(reader.stdout).text(),
      ])
      expect({ code, stderr }).toEqual({ code: 0, stderr: expect.not.stringContaining("not to you") })
      expect(JSON.parse(exported.split("\n")[0] ?? "")).toMatchObject({ action: expect.stringContaining("user") })
      // Nothing but the entries goes into it: the summary is on stderr.
      for (const line of exported.trimEnd().split("\n")) expect(() => JSON.parse(line)).not.toThrow()
      expect(stderr).toContain("Exported ")
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)
})

test("`chimera tokens revoke NAME` says tokens are revoked by id, and which id that name has", async () => {
  await using cp = await startInProcess()
  const home = await mkdtemp(join(tmpdir(), "chimera-cli-home-"))
  try {
    const chimera = (args: string[]) =>
      run([process.execPath, MAIN, ...args], {
        env: { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" },
      })
    const created = JSON.parse(
      (await chimera(["tokens", "create", "prometheus", "--role", "metrics", "--json"])).stdout,
    )
    // Before: "active API token with id "prometheus" (tokens are revoked by id: see chimera tokens list) not found".
    const byName = await chimera(["tokens", "revoke", "prometheus"])
    expect({ code: byName.code, stderr: byName.stderr }).toEqual({
      code: 1,
      stderr: `error tokens are revoked by id, and "prometheus" is the name of token ${created.id}: chimera tokens revoke ${created.id}\n`,
    })
    // Nothing was revoked by the name; by its id it is.
    expect((await chimera(["tokens", "revoke", created.id])).code).toBe(0)
    const unknown = await chimera(["tokens", "revoke", "prometheus"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain("404 NOT_FOUND")
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}, 30_000)
