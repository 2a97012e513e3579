// The operator's ~/.ssh/config holds for Chimera's SSH commands as it does for ssh and for the closure
// copy: a node named by a Host alias is reached at the HostName, Port, User and IdentityFile the file
// gives it, what Chimera is told explicitly beats the file, ProxyJump goes through the jump host, a
// ProxyCommand is refused by name, and a deploy's copy and commands reach the same sshd. Real sshd on
// loopback: a jump node, and a target node with a second sshd on port 2222 and a login "alice"; HOME
// is a temp dir holding .ssh/config, as the CLI runs with it.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { type AddressClaim, claimAddresses } from "./support/loopback.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { ed25519, prepareSshd, type Sshd } from "./support/sshd.ts"
import { addSudoUser } from "./support/sudo-user.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"

setDefaultTimeout(60_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

let tb: Testbed
let jump: TestbedNode
let node: TestbedNode
let sshd2222: Sshd
let home: string
let gen2: StorePath
let stall: AddressClaim
let stallListener: ReturnType<typeof Bun.spawn> | undefined
const STALL_PORT = 18931

beforeAll(async () => {
  const gen1 = await buildTestSystem(1, { tag: "sshcfg" })
  gen2 = await buildTestSystem(2, { tag: "sshcfg" })
  tb = await createTestbed({ nodes: 2, prefix: "sshcfg", boot: gen1 })
  jump = tb.nodes[0] as TestbedNode
  node = tb.nodes[1] as TestbedNode
  home = await mkdtemp(join(tmpdir(), "chimera-sshcfg-home-"))
  await mkdir(join(home, ".ssh"), { mode: 0o700 })

  // alice logs in with a key of her own, which only ~/.ssh/config names.
  const alice = ed25519("alice@sshcfg")
  await writeFile(join(home, ".ssh", "alice_key"), alice.privateKey, { mode: 0o600 })
  await addSudoUser(node.node, join(tb.dir, "alice"), {
    name: "alice",
    uid: 1501,
    password: "not-used",
    authorizedKeys: `${alice.publicKey}\n`,
  })
  // A second sshd on the target, port 2222, with a host key of its own.
  const hostKey = ed25519("sshcfg-2222")
  sshd2222 = await prepareSshd(node.node, {
    dir: join(tb.dir, "sshd-2222"),
    address: node.address,
    port: 2222,
    authorizedKeysFile: tb.authorizedKeysFile,
    hostKey,
  })
  await sshd2222.start()
  // "behind.internal" resolves on the jump node only (its own /etc/hosts): the target is reachable
  // under that name through the jump host and not directly.
  const hosts = join(tb.dir, "jump-hosts")
  await writeFile(hosts, `${await readFile("/etc/hosts", "utf8")}\n${node.address} behind.internal\n`)
  const bound = await jump.node.exec(["mount", "--bind", hosts, "/etc/hosts"])
  if (bound.code !== 0)
    throw new Error(`cannot give the jump node its own /etc/hosts: ${bound.stderr}`)

    // An address whose TCP connect hangs, as one that drops packets does: a listener with a backlog of
    // one that never accepts, the one already taken, so the kernel drops every SYN after it.
  ;[stall] = claimAddresses(1, new Set(tb.nodes.map((n) => n.address))) as [AddressClaim]
  stallListener = Bun.spawn(
    [
      "python3",
      "-c",
      `import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(0)
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True); time.sleep(3600)`,
      stall.address,
      String(STALL_PORT),
    ],
    { stdout: "pipe", stderr: "inherit" },
  )
  const said = await (stallListener.stdout as ReadableStream<Uint8Array>).getReader().read()
  if (!new TextDecoder().decode(said.value).startsWith("ready")) throw new Error("the stalling listener did not start")

  await copyFile(tb.identityFile, join(home, ".ssh", "root_key"))
  const key2222 = hostKey.publicKey.split(" ").slice(0, 2).join(" ")
  // A target with a known_hosts file of its own, which knows that target alone.
  await writeFile(join(home, ".ssh", "behind_known_hosts"), `[behind.internal]:2222 ${key2222}\n`)
  await writeFile(
    join(home, ".ssh", "known_hosts"),
    [
      `${jump.address} ${jump.hostKey}`,
      `${node.address} ${node.hostKey}`,
      `[${node.address}]:2222 ${key2222}`,
      `[behind.internal]:2222 ${key2222}`,
      `good-alias ${key2222}`,
      `bad-alias ${ed25519("impostor").publicKey.split(" ").slice(0, 2).join(" ")}`,
      "",
    ].join("\n"),
  )
  const ssh = join(home, ".ssh")
  await writeFile(
    join(ssh, "config"),
    `Host web-alias
  HostName ${node.address}
  Port 2222
  User alice
  IdentityFile ${ssh}/alice_key

Host web-root
  HostName ${node.address}
  Port 2222
  User root
  IdentityFile ${ssh}/root_key

Host tilde-root
  HostName ${node.address}
  Port 2222
  User root
  IdentityFile ~/.ssh/root_key

Host behind-own
  HostName behind.internal
  Port 2222
  User root
  IdentityFile ${ssh}/root_key
  UserKnownHostsFile ${ssh}/behind_known_hosts
  ProxyJump jump-alias

Host behind
  HostName behind.internal
  Port 2222
  User alice
  IdentityFile ${ssh}/alice_key
  ProxyJump jump-alias

Host behind-root
  HostName behind.internal
  Port 2222
  User root
  IdentityFile ${ssh}/root_key
  ProxyJump jump-alias

Host chain
  HostName behind.internal
  Port 2222
  User alice
  IdentityFile ${ssh}/alice_key
  ProxyJump web-root,jump-alias

Host keyed-good keyed-bad
  HostName ${node.address}
  Port 2222
  User alice
  IdentityFile ${ssh}/alice_key
Host keyed-good
  HostKeyAlias good-alias
Host keyed-bad
  HostKeyAlias bad-alias

Host jump-alias
  HostName ${jump.address}
  User root
  IdentityFile ${ssh}/root_key

Host stalled
  HostName ${stall.address}
  Port ${STALL_PORT}
  User root
  IdentityFile ${ssh}/root_key
  ProxyJump jump-alias

Host piped
  HostName ${node.address}
  ProxyCommand nc %h %p
`,
  )
  // The fleet names nodes by alias only: no user, no port, no [ssh] key or known_hosts.
  await writeFile(
    join(home, "chimera.toml"),
    ["web", "web-root", "behind", "behind-root", "chain", "piped", "keyed-good", "keyed-bad"]
      .map((n) => `[fleet.nodes.${n}]\naddress = "${n === "web" ? "web-alias" : n}"\n`)
      .join("\n"),
  )
}, 120_000)

afterAll(async () => {
  stallListener?.kill()
  stall?.release()
  await sshd2222?.stop()
  await tb?.stop()
  if (home) await rm(home, { recursive: true, force: true })
})

const chimera = (args: string[]) =>
  run([process.execPath, MAIN, ...args], {
    env: {
      HOME: home,
      SSH_AUTH_SOCK: "",
      CHIMERA_CONFIG_FILE: join(home, "chimera.toml"),
      CHIMERA_DATA_DIR: join(home, "data"),
      CHIMERA_URL: "",
      CHIMERA_TOKEN: "",
      NO_COLOR: "1",
    },
  })

/** Logins sshd accepted so far, by user, from its log. */
const accepted = async (sshd: Sshd, user: string) =>
  ((await readFile(sshd.logFile, "utf8")).match(new RegExp(`Accepted publickey for ${user} `, "g")) ?? []).length

/** exec's JSON results: who ran the command and which server address and port took the connection. */
async function whereRan(target: string, extra: string[] = []) {
  const r = await chimera(["exec", "-t", target, ...extra, "--json", "--", 'echo "$(id -un) $SSH_CONNECTION"'])
  const [result] = (
    JSON.parse(r.stdout || '{"results":[{}]}') as {
      results: { ok?: boolean; stdout?: string; failure?: { message: string } }[]
    }
  ).results
  const [user, , , address, port] = (result?.stdout ?? "").trim().split(" ")
  return { code: r.code, user, address, port, failure: result?.failure?.message, stderr: r.stderr }
}

describe("~/.ssh/config for the ssh2 connections", () => {
  test("a node whose address is a Host alias is reached at the HostName, Port, User and IdentityFile it gives", async () => {
    expect(await whereRan("web")).toMatchObject({ code: 0, user: "alice", address: node.address, port: "2222" })
  })

  test("a user, port or key given to Chimera beats the file; its defaults (root, 22) do not", async () => {
    // The HostName still comes from the file; the rest is what the target and --identity say.
    expect(await whereRan("root@web-alias:22", ["--identity", tb.identityFile])).toMatchObject({
      code: 0,
      user: "root",
      address: node.address,
      port: "22",
    })
    // Only the port given: the user and the key still come from the file.
    expect(await whereRan("web-root:22")).toMatchObject({ code: 0, user: "root", address: node.address, port: "22" })
  })

  test("ProxyJump goes through the jump host, to a name only the jump host can resolve", async () => {
    const before = await accepted(jump.sshd, "root")
    expect(await whereRan("behind")).toMatchObject({ code: 0, user: "alice", port: "2222" })
    expect(await accepted(jump.sshd, "root")).toBe(before + 1)
  })

  test("a ProxyJump chain goes through each hop in turn", async () => {
    const [viaNode, viaJump] = [await accepted(sshd2222, "root"), await accepted(jump.sshd, "root")]
    expect(await whereRan("chain")).toMatchObject({ code: 0, user: "alice", port: "2222" })
    expect([await accepted(sshd2222, "root"), await accepted(jump.sshd, "root")]).toEqual([viaNode + 1, viaJump + 1])
  })

  test("a hop the jump host cannot connect to fails at the connect budget, not the kernel's two minutes", async () => {
    const t0 = performance.now()
    const r = await whereRan("stalled", ["--timeout", "3"])
    expect(r.code).toBe(1)
    expect(r.failure).toContain("stalled: timed out after 3.0 s")
    expect(performance.now() - t0).toBeLessThan(20_000)
  })

  test("known_hosts is searched for the HostKeyAlias when the file gives one, as ssh searches it", async () => {
    expect(await whereRan("keyed-good")).toMatchObject({ code: 0, user: "alice", port: "2222" })
    const bad = await whereRan("keyed-bad")
    expect(bad.code).toBe(1)
    expect(bad.failure).toContain("keyed-bad: HOST KEY MISMATCH")
  })

  test("a ProxyCommand is refused, naming the host and the option, rather than dialled directly", async () => {
    const before = await accepted(node.sshd, "root")
    const r = await whereRan("piped", ["--identity", tb.identityFile])
    expect(r.code).toBe(1)
    expect(r.failure).toContain("piped: the SSH configuration gives piped a ProxyCommand (nc")
    expect(r.failure).toContain("use ProxyJump")
    expect(await accepted(node.sshd, "root")).toBe(before)
  })
})

/**
 * Deploys generation `gen` of the test system to `target` and checks it landed: exit 0, the target
 * deployed with no error, and the node (every alias here reaches the same one) running it.
 */
async function deploysTo(target: string, gen: string) {
  const config = join(home, `gen${gen}.nix`)
  await writeFile(config, `import ${TEST_SYSTEM} { generation = "${gen}"; tag = "sshcfg"; }\n`)
  const r = await chimera(["deploy", "-t", target, "--config", config, "--json"])
  const record = JSON.parse(r.stdout || "{}") as {
    closure: string
    targets?: { status: string; error: string | null }[]
  }
  expect({ code: r.code, targets: record.targets?.map((t) => [t.status, t.error]), stderr: r.stderr }).toMatchObject({
    code: 0,
    targets: [["deployed", null]],
  })
  expect(await node.node.exec(["readlink", "/run/current-system"])).toMatchObject({ stdout: `${record.closure}\n` })
  return record
}

describe("a deploy's copy and commands take the same route", () => {
  test("a deploy to a node named by alias copies and runs on the sshd the file names, and nowhere else", async () => {
    const on22 = await accepted(node.sshd, "root")
    const onJump = await accepted(jump.sshd, "root")
    const on2222 = await accepted(sshd2222, "root")
    expect((await deploysTo("web-root", "2")).closure).toBe(gen2)
    // nix-copy-closure's ssh and the ssh2 connections both logged in on port 2222; port 22 saw none.
    expect(await accepted(node.sshd, "root")).toBe(on22)
    expect(await accepted(jump.sshd, "root")).toBe(onJump)
    expect(await accepted(sshd2222, "root")).toBeGreaterThanOrEqual(on2222 + 2)
  })

  // HOME is not the password file's home here, as under sudo or a service's own HOME: Chimera reads
  // `~` as $HOME, and ssh as the password file's, so the copy's ssh is given the key Chimera found.
  test("a key named with ~ is the same key for the copy as for the commands", async () => {
    await deploysTo("tilde-root", "4")
  })

  test("a deploy through a ProxyJump host copies and runs through it, both halves", async () => {
    const on22 = await accepted(node.sshd, "root")
    const onJump = await accepted(jump.sshd, "root")
    const on2222 = await accepted(sshd2222, "root")
    await deploysTo("behind-root", "3")
    // behind.internal resolves on the jump node only: every login on the target came through it.
    const through = (await accepted(sshd2222, "root")) - on2222
    expect(through).toBeGreaterThanOrEqual(2)
    expect((await accepted(jump.sshd, "root")) - onJump).toBe(through)
    expect(await accepted(node.sshd, "root")).toBe(on22)
  })

  // ssh checks each host against the known_hosts file its own Host block gives, as Chimera's commands do.
  test("a jump host is checked against its own known_hosts file, not the target's", async () => {
    await deploysTo("behind-own", "5")
  })
})
