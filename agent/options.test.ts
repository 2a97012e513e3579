import { afterEach, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "citty"
import { gatherControlUrls } from "./control-urls.ts"
import { agentArgs, parseAgentOptions } from "./options.ts"

const parse = (argv: string[], env: Record<string, string | undefined> = {}) =>
  parseAgentOptions(gatherControlUrls(parseArgs(argv, agentArgs), argv), env)

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe("agent options", () => {
  test("defaults: heartbeat 5 s, drift check 30 s, auto-heal on, NixOS's default paths", async () => {
    const o = await parse(["--node-id", "web-1"])
    expect(o).toEqual({
      nodeId: "web-1",
      heartbeatSeconds: 5,
      driftIntervalSeconds: 30,
      autoHeal: true,
      watch: true,
      spoolMaxBytes: 16 * 1024 * 1024,
      switchLockWaitSeconds: 120,
      controlUrls: [],
      failbackSeconds: 300,
      spreadReplicas: false,
      joinToken: null,
      joinTokenSource: null,
      joinTokenFileToDelete: null,
      stateDir: "/var/lib/chimera-agent",
      systemProfile: "/nix/var/nix/profiles/system",
      currentSystem: "/run/current-system",
      bootedSystem: "/run/booted-system",
      bootIdFile: "/proc/sys/kernel/random/boot_id",
      metricsListen: null,
      desired: null,
      logLevel: "info",
    })
  })

  test("with no config file and no CHIMERA_ variable the control plane's config loader is never loaded; with one it is, and applies", () => {
    // In a process of its own, whose module registry only this parse has touched.
    const script = `
      import { parseArgs } from "citty"
      import { agentArgs, parseAgentOptions } from "./agent/options.ts"
      const loaded = () => Object.keys(require.cache).some((k) => k.endsWith("/control/config.ts"))
      const args = parseArgs(["--node-id", "web-1"], agentArgs)
      const plain = await parseAgentOptions(args, { CHIMERA_URL: "http://127.0.0.1:1", PATH: "/bin" })
      const before = loaded()
      const set = await parseAgentOptions(args, { CHIMERA_AGENT_HEARTBEAT_INTERVAL: "7" })
      console.log(JSON.stringify({ before, after: loaded(), plain: plain.heartbeatSeconds, set: set.heartbeatSeconds }))`
    const run = Bun.spawnSync([process.execPath, "-e", script], { cwd: join(import.meta.dir, ".."), stderr: "pipe" })
    expect(run.stderr.toString()).toBe("")
    expect(JSON.parse(run.stdout.toString())).toEqual({ before: false, after: true, plain: 5, set: 7 })
  })

  test("--metrics-listen takes HOST:PORT and refuses anything else, naming the flag", async () => {
    expect((await parse(["--node-id", "n", "--metrics-listen", "127.0.0.1:9101"])).metricsListen).toEqual({
      host: "127.0.0.1",
      port: 9101,
    })
    expect((await parse(["--node-id", "n", "--metrics-listen", "[::1]:0"])).metricsListen).toEqual({
      host: "::1",
      port: 0,
    })
    for (const bad of ["9101", "127.0.0.1", "127.0.0.1:99999", "http://127.0.0.1:9101"])
      await expect(parse(["--node-id", "n", "--metrics-listen", bad])).rejects.toThrow(/^--metrics-listen: /)
  })

  test("--no-watch leaves only the poll", async () => {
    expect((await parse(["--node-id", "n"])).watch).toBe(true)
    expect((await parse(["--node-id", "n", "--no-watch"])).watch).toBe(false)
  })

  test("--no-auto-heal turns healing off", async () => {
    expect((await parse(["--node-id", "n", "--no-auto-heal"])).autoHeal).toBe(false)
  })

  test("the control URL and join token come from the environment when no flag is given", async () => {
    const o = await parse(["--node-id", "n"], {
      CHIMERA_URL: "http://127.0.0.1:8080",
      CHIMERA_JOIN_TOKEN: "chm_join_x",
    })
    expect(o.controlUrls).toEqual(["http://127.0.0.1:8080"])
    expect(o.joinToken).toBe("chm_join_x")
    const flagged = await parse(["--node-id", "n", "--control-url", "https://cp.example", "--join-token", "t"], {
      CHIMERA_URL: "http://127.0.0.1:8080",
    })
    expect(flagged.controlUrls).toEqual(["https://cp.example"])
    expect(flagged.joinToken).toBe("t")
  })

  test("--control-url takes replicas as a comma-separated list, a repeated flag or CHIMERA_URL", async () => {
    const listed = await parse(["--node-id", "n", "--control-url", "http://127.0.0.1:1, https://cp-b.example/"])
    expect(listed.controlUrls).toEqual(["http://127.0.0.1:1", "https://cp-b.example/"])
    const repeated = await parse([
      "--node-id",
      "n",
      "--control-url",
      "http://127.0.0.1:1",
      "--control-url=http://127.0.0.1:2,http://127.0.0.1:3",
      "--control-url",
      "http://127.0.0.1:1",
    ])
    expect(repeated.controlUrls).toEqual(["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"])
    const env = await parse(["--node-id", "n"], { CHIMERA_URL: "http://127.0.0.1:1,http://127.0.0.1:2" })
    expect(env.controlUrls).toEqual(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    // --spread-replicas leaves the list as given here; the agent orders it (replicas.ts spreadOrder).
    const spread = await parse([
      "--node-id",
      "n",
      "--control-url",
      "http://127.0.0.1:1,http://127.0.0.1:2",
      "--spread-replicas",
    ])
    expect(spread).toMatchObject({ controlUrls: ["http://127.0.0.1:1", "http://127.0.0.1:2"], spreadReplicas: true })
  })

  test("a bad entry in the --control-url list is refused, naming the entry", async () => {
    await expect(parse(["--node-id", "n", "--control-url", "http://127.0.0.1:1,ftp://x"])).rejects.toThrow(
      /^--control-url: entry 2 of 2, "ftp:\/\/x", is not an http:\/\/ or https:\/\/ URL/,
    )
    await expect(parse(["--node-id", "n", "--control-url", "http://127.0.0.1:1,,http://127.0.0.1:2"])).rejects.toThrow(
      /^--control-url: entry 2 of 3, "",/,
    )
    await expect(
      parse(["--node-id", "n", "--control-url", "http://127.0.0.1:1", "--control-url", "nonsense"]),
    ).rejects.toThrow(/^--control-url: entry 2 of 2, "nonsense"/)
    await expect(parse(["--node-id", "n"], { CHIMERA_URL: "http://a.example,b" })).rejects.toThrow(
      /^--control-url: entry 2 of 2, "b"/,
    )
  })

  test("--join-token-file is read and trimmed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "chimera-opts-"))
    dirs.push(dir)
    writeFileSync(join(dir, "token"), "chm_join_fromfile\n")
    const o = await parse(["--node-id", "n", "--join-token-file", join(dir, "token")])
    expect(o.joinToken).toBe("chm_join_fromfile")
    await expect(parse(["--node-id", "n", "--join-token-file", join(dir, "absent")])).rejects.toThrow(
      /^--join-token-file: cannot read/,
    )
  })

  test("bad values fail with the flag's name", async () => {
    await expect(parse(["--node-id", "bad id"])).rejects.toThrow(/^--node-id:/)
    await expect(parse(["--node-id", "n", "--heartbeat", "abc"])).rejects.toThrow(/^--heartbeat:/)
    await expect(parse(["--node-id", "n", "--heartbeat", "0.000001"])).rejects.toThrow(
      "--heartbeat: expected at least 0.5 seconds",
    )
    expect((await parse(["--node-id", "n", "--heartbeat", "0.5"])).heartbeatSeconds).toBe(0.5)
    await expect(parse(["--node-id", "n", "--drift-interval", "0"])).rejects.toThrow(/^--drift-interval:/)
    await expect(parse(["--node-id", "n", "--control-url", "ftp://x"])).rejects.toThrow(/^--control-url:/)
    await expect(parse(["--node-id", "n", "--state-dir", "relative"])).rejects.toThrow(/^--state-dir:/)
    await expect(parse(["--node-id", "n", "--desired", "/tmp/x"])).rejects.toThrow(/^--desired:/)
    await expect(parse(["--node-id", "n", "--log-level", "loud"])).rejects.toThrow(/^--log-level:/)
    await expect(parse(["--node-id", "n", "--spool-max-bytes", "1000"])).rejects.toThrow(/^--spool-max-bytes:/)
    await expect(parse(["--node-id", "n", "--failback-interval", "0.5"])).rejects.toThrow(
      '--failback-interval: expected 0 (stay) or 1 to 86400 seconds (got "0.5")',
    )
    expect((await parse(["--node-id", "n", "--failback-interval", "0"])).failbackSeconds).toBe(0)
    await expect(parse(["--node-id", "n", "--switch-lock-wait", "-1"])).rejects.toThrow(/^--switch-lock-wait:/)
    await expect(parse(["--node-id", "n"], { CHIMERA_AGENT_SPOOL_MAX_BYTES: "lots" })).rejects.toThrow(
      /CHIMERA_AGENT_SPOOL_MAX_BYTES/,
    )
    expect((await parse(["--node-id", "n"], { CHIMERA_AGENT_SPOOL_MAX_BYTES: "2097152" })).spoolMaxBytes).toBe(2097152)
  })
})
