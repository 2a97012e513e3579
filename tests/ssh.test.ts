// Remote execution against a real fleet: 20 test nodes, each a private mount namespace with Debian's
// sshd on its own loopback address, reached through ssh2 (commands) and the ssh client
// (nix-copy-closure). Host keys, authentication, time-outs and unreachable nodes are all real.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { utils } from "ssh2"
import { createSshExecutor, emptyInventory, resolveTargets } from "../control/adapters/ssh/index.ts"
import { USAGE_STATUS } from "../control/cli/errors.ts"
import type { Target } from "../control/domain/operation-ports.ts"
import type { StorePath } from "../protocol/ids.ts"
import { claimAddresses } from "./support/loopback.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { ed25519 } from "./support/sshd.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { requireTool, run, runOk } from "./support/tools.ts"

// bun 1.4 applies tests/preload.ts's setDefaultTimeout to the first test file only; these need real time.
setDefaultTimeout(60_000)

let tb: Testbed
let gen1: StorePath
let gen2: StorePath
let targets: Target[]
let scratch: string

beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1), buildTestSystem(2)])
  tb = await createTestbed({ nodes: 20, boot: gen1 })
  targets = resolveTargets(tb.targets, emptyInventory)
  scratch = await mkdtemp(join(tmpdir(), "chimera-ssh-test-"))
})
afterAll(async () => {
  await tb?.stop()
  await rm(scratch, { recursive: true, force: true })
})

const executor = (o: Parameters<typeof createSshExecutor>[0] = {}) =>
  createSshExecutor({ identity: tb.identityFile, knownHosts: tb.knownHostsFile, ...o })
const target = (i: number) => targets[i] as Target
const accepted = async (i: number) =>
  ((await readFile(tb.nodes[i]?.sshd.logFile as string, "utf8")).match(/Accepted publickey/g) ?? []).length

describe("commands", () => {
  test("a command on a node sees that node's own /run/current-system", async () => {
    await tb.nodes[1]?.node.switchTo(gen2)
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor(), (e) => e.close())
    const [one, two] = await exec.execMany([target(0), target(1)], "readlink /run/current-system")
    expect(one).toMatchObject({ ok: true, exitCode: 0, stdout: `${gen1}\n` })
    expect(two).toMatchObject({ ok: true, exitCode: 0, stdout: `${gen2}\n` })
    expect(await exec.systemState(target(1))).toEqual({ profile: gen2, current: gen2, booted: gen1 })
  })

  test("execMany runs 20 nodes at once and returns the results in target order", async () => {
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor({ parallel: 20 }), (e) => e.close())
    const t0 = performance.now()
    const results = await exec.execMany(targets, 'date +%s%N; sleep 1; date +%s%N; echo "$SSH_CONNECTION"')
    const wall = performance.now() - t0
    expect(results.map((r) => r.target.name)).toEqual(targets.map((t) => t.name))
    for (const [i, r] of results.entries()) {
      expect(r.ok).toBe(true)
      // SSH_CONNECTION names the server address: each result came from its own node.
      expect(r.stdout.trim().split("\n")[2]?.split(" ")[2]).toBe(tb.nodes[i]?.address)
    }
    const spans = results.map((r) => r.stdout.split("\n").slice(0, 2).map(Number) as [number, number])
    // Every command was running while every other was: the latest start precedes the earliest end.
    expect(Math.max(...spans.map((s) => s[0]))).toBeLessThan(Math.min(...spans.map((s) => s[1])))
    expect(wall).toBeLessThan(8_000) // one after another would take 20 s
  })

  test("a pooled connection is reused: the second command does no new handshake; fresh does one", async () => {
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor(), (e) => e.close())
    const before = await accepted(2)
    expect((await exec.exec(target(2), "true")).ok).toBe(true)
    expect((await exec.exec(target(2), "echo again")).stdout).toBe("again\n")
    expect(exec.handshakes()).toBe(1)
    expect(await accepted(2)).toBe(before + 1) // sshd saw one login, not two
    expect((await exec.exec(target(2), "true", { fresh: true })).ok).toBe(true)
    expect(exec.handshakes()).toBe(2)
  })

  test("a non-zero exit and stdin come back as data", async () => {
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor(), (e) => e.close())
    expect(await exec.exec(target(3), "cat; echo oops >&2; exit 3", { stdin: "in\n" })).toMatchObject({
      ok: false,
      exitCode: 3,
      stdout: "in\n",
      stderr: "oops\n",
    })
  })

  test("syncClosure copies a built system with nix-copy-closure over the real ssh client", async () => {
    const closure = await buildTestSystem(3, { tag: "sync" })
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor(), (e) => e.close())
    const r = await exec.syncClosure(target(4), closure)
    expect(r.failure).toBeUndefined()
    expect(r).toMatchObject({ ok: true, exitCode: 0 })
  })
})

describe("host keys are checked, and each target fails alone with its reason", () => {
  test("an unknown host key is refused with how to trust it; --trust-new-hosts records it", async () => {
    const knownHosts = join(scratch, "known_hosts.empty")
    await writeFile(knownHosts, "")
    await using stack = new AsyncDisposableStack()
    const strict = stack.adopt(executor({ knownHosts }), (e) => e.close())
    const refused = await strict.exec(target(5), "true")
    expect(refused.failure?.kind).toBe("unknown-host-key")
    expect(refused.failure?.message).toContain("--trust-new-hosts")
    expect(refused.failure?.message).toContain(`ssh-keyscan -p 22 -t ed25519 ${tb.nodes[5]?.address} >> ${knownHosts}`)

    const trusting = stack.adopt(executor({ knownHosts, trustNewHosts: true }), (e) => e.close())
    expect((await trusting.exec(target(5), "true")).ok).toBe(true)
    expect(await readFile(knownHosts, "utf8")).toBe(
      `${tb.nodes[5]?.address} ${tb.nodes[5]?.hostKey.split(" ").slice(0, 2).join(" ")}\n`,
    )
    const later = stack.adopt(executor({ knownHosts }), (e) => e.close())
    expect((await later.exec(target(5), "true")).ok).toBe(true)
  })

  test("a host key that differs from the recorded one is refused, even with --trust-new-hosts", async () => {
    const knownHosts = join(scratch, "known_hosts.wrong")
    const impostor = ed25519("impostor").publicKey.split(" ").slice(0, 2).join(" ")
    const recorded = `${tb.nodes[6]?.address} ${impostor}\n`
    await writeFile(knownHosts, recorded)
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor({ knownHosts, trustNewHosts: true }), (e) => e.close())
    const r = await exec.exec(target(6), "true")
    expect(r.failure?.kind).toBe("host-key-mismatch")
    expect(r.failure?.message).toContain("HOST KEY MISMATCH")
    // What a reinstalled host's operator does next: both steps, the second with the flag that records it.
    expect(r.failure?.message).toContain(`ssh-keygen -R ${tb.nodes[6]?.address} -f ${knownHosts}`)
    expect(r.failure?.message).toContain("rerun with --trust-new-hosts")
    expect(await readFile(knownHosts, "utf8")).toBe(recorded)

    // Only an RSA key on record: the node (ed25519 only) offers no recorded type, which is a change too.
    const rsa = utils.generateKeyPairSync("rsa", { bits: 2048 }).public.split(" ").slice(0, 2).join(" ")
    await writeFile(knownHosts, `${tb.nodes[6]?.address} ${rsa}\n`)
    const other = stack.adopt(executor({ knownHosts, trustNewHosts: true }), (e) => e.close())
    expect((await other.exec(target(6), "true")).failure?.kind).toBe("host-key-mismatch")
  })

  test("hashed known_hosts entries (ssh-keygen -H) verify like plain ones", async () => {
    const knownHosts = join(scratch, "known_hosts.hashed")
    await writeFile(knownHosts, await readFile(tb.knownHostsFile, "utf8"))
    await runOk([requireTool("ssh-keygen"), "-H", "-f", knownHosts])
    expect(await readFile(knownHosts, "utf8")).toStartWith("|1|")
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor({ knownHosts }), (e) => e.close())
    expect((await exec.exec(target(7), "true")).ok).toBe(true)
  })

  test("a key the node does not authorise is an auth failure naming the key file", async () => {
    const identity = join(scratch, "stranger")
    await writeFile(identity, ed25519("stranger").privateKey, { mode: 0o600 })
    await using stack = new AsyncDisposableStack()
    const exec = stack.adopt(executor({ identity }), (e) => e.close())
    const r = await exec.exec(target(8), "true")
    expect(r.failure?.kind).toBe("auth-failed")
    expect(r.failure?.message).toContain(identity)
  })

  test("an unreachable node, a silent one and a slow command each fail alone, with their reason", async () => {
    const [down, mute] = claimAddresses(2)
    // Accepts TCP and never says a word: an SSH server wedged before its banner.
    const silent = Bun.listen({ hostname: mute?.address as string, port: 22, socket: { data() {} } })
    try {
      const extra = resolveTargets([`root@${down?.address}`, `root@${mute?.address}`], emptyInventory)
      await using stack = new AsyncDisposableStack()
      // Long enough for a healthy node's handshake on a busy machine; the silent one still times out.
      const exec = stack.adopt(executor({ timeoutMs: 4000, parallel: 20 }), (e) => e.close())
      const all = [target(9), ...extra, target(10)]
      const results = await exec.execMany(all, "uname -n")
      expect(results.map((r) => r.failure?.kind ?? "ok")).toEqual(["ok", "unreachable", "timeout", "ok"])
      expect(results[1]?.failure?.message).toContain("connection refused")
      expect(results[2]?.failure?.message).toContain("timed out after 4.0 s (no SSH handshake)")

      const slow = await exec.execMany([target(9), target(10)], "sleep 60", { timeoutMs: 2000 })
      expect(slow.map((r) => r.failure?.kind)).toEqual(["timeout", "timeout"])
      // The timeout it was given, not what the connection left of it.
      expect(slow.map((r) => r.failure?.message)).toEqual(
        [target(9), target(10)].map((t) => `${t.name}: timed out after 2.0 s (the command did not finish)`),
      )
      expect(slow[0]?.failure?.message).toContain("the command did not finish")
      expect((await exec.exec(target(9), "echo still here")).stdout).toBe("still here\n")
    } finally {
      silent.stop(true)
      down?.release()
      mute?.release()
    }
  })
})

describe("chimera exec", () => {
  const cli = (args: string[], env: Record<string, string> = {}) =>
    run([process.execPath, join(import.meta.dir, "../control/main.ts"), "exec", ...args], {
      // Its own data dir: the CLI's store is never the user's own ~/.local/share/chimera.
      env: { NO_COLOR: "1", CHIMERA_DATA_DIR: join(scratch, "data"), ...env },
    })
  const sshFlags = () => ["--identity", tb.identityFile, "--known-hosts", tb.knownHostsFile]

  test("prints each node's output under its name, a summary, and exits 0", async () => {
    const list = `${tb.nodes[11]?.target},${tb.nodes[12]?.target}`
    const r = await cli(["-t", list, ...sshFlags(), "--", "cat", "/run/current-system/generation"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`${tb.nodes[11]?.target} | 1\n`)
    expect(r.stdout).toContain(`${tb.nodes[12]?.target} | 1\n`)
    expect(r.stderr).toMatch(/^2 targets: 2 ok in \d+\.\d\d s\n$/)
  })

  test("one bad target fails alone: exit 1, its reason, and --json has every result in order", async () => {
    const [down] = claimAddresses(1)
    try {
      const list = `${tb.nodes[13]?.target},root@${down?.address},${tb.nodes[14]?.target}`
      const r = await cli(["-t", list, ...sshFlags(), "--timeout", "5", "--json", "--", "echo hi"])
      expect(r.code).toBe(1)
      const { results } = JSON.parse(r.stdout) as {
        results: { target: string; ok: boolean; stdout: string; failure?: { kind: string } }[]
      }
      expect(results.map((x) => x.failure?.kind ?? x.stdout)).toEqual(["hi\n", "unreachable", "hi\n"])
      // As generations and rollback give it: the target by the name it was given.
      expect(results[1]?.target).toBe(`root@${down?.address}`)
      const human = await cli(["-t", list, ...sshFlags(), "--", "echo hi"])
      expect(human.code).toBe(1)
      expect(human.stderr).toMatch(new RegExp(`root@${down?.address} +✗ unreachable: .*connection refused`))
      expect(human.stderr).toContain(`3 targets: 2 ok, 1 failed (root@${down?.address}: unreachable)`)
    } finally {
      down?.release()
    }
  })

  test("a command that outlives --timeout is killed on the node with what it started, though the login is root", async () => {
    // OpenSSH refuses SSH's "signal" request for root logins: only the wrapper on the node stops it.
    const tag = String(Math.floor(Math.random() * 1e9)).padStart(9, "0")
    const alive = async () => (await run(["pgrep", "-f", `sleep 300[01]\\.${tag}`])).stdout.trim()
    const target = tb.nodes[16]?.target as string
    const r = await cli(["-t", target, ...sshFlags(), "--timeout", "3", "--", `sleep 3000.${tag} & sleep 3001.${tag}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("timeout")
    let left = await alive()
    for (let i = 0; i < 50 && left !== ""; i++) {
      await Bun.sleep(100)
      left = await alive()
    }
    expect(left).toBe("")
    // Unwrapped, it reads as before: the login shell, its status and its output.
    const ok = await cli(["-t", target, ...sshFlags(), "--json", "--", 'echo "$0 $1"; exit 3'])
    const [res] = (JSON.parse(ok.stdout) as { results: { exitCode: number; stdout: string }[] }).results
    expect(res?.exitCode).toBe(3)
    expect(res?.stdout).toMatch(/^\S*sh \n$/)
  })

  test("with its control plane down, the results still come out, then a warning that they were not recorded", async () => {
    const [gone] = claimAddresses(1)
    try {
      const env = { CHIMERA_URL: `http://${gone?.address}:9`, CHIMERA_TOKEN: "chm_api_not-checked-nobody-answers" }
      const target = tb.nodes[15]?.target as string
      const human = await cli(["-t", target, ...sshFlags(), "--", "echo hi"], env)
      expect(human.stdout).toContain(`${target} | hi\n`)
      expect(human.stderr).toContain("1 target: 1 ok")
      expect(human.stderr).toContain("warning the command was not recorded: cannot reach the control plane")
      // Done on the node, not recorded: 3, so a script tells it from a failed target (1).
      expect(human.code).toBe(3)
      const failed = await cli(["-t", target, ...sshFlags(), "--", "exit 4"], env)
      expect(failed.stderr).toContain("warning the command was not recorded")
      expect(failed.code).toBe(1)
      const json = await cli(["-t", target, ...sshFlags(), "--json", "--", "echo hi"], env)
      const { results } = JSON.parse(json.stdout) as { results: { stdout: string }[] }
      expect(results.map((x) => x.stdout)).toEqual(["hi\n"])
    } finally {
      gone?.release()
    }
  })

  test("a malformed target or flag is refused before anything connects", async () => {
    const bad = await cli(["-t", "root@host:99999", ...sshFlags(), "--", "true"])
    expect(bad.code).toBe(USAGE_STATUS)
    expect(bad.stderr).toContain('target "root@host:99999": port must be a number from 1 to 65535')
    const flag = await cli(["-t", tb.nodes[0]?.target as string, "--parallel", "zero", "--", "true"])
    expect(flag.stderr).toContain("--parallel: expected a whole number")
  })
})
