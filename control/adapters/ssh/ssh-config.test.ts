// Reading `ssh -G`'s answer: the route's fields, ~ and %-tokens in IdentityFile, ssh's built-in key
// list told apart from one the file gives, ProxyJump specs, and what a target says explicitly.
// tests/ssh-config.test.ts proves the routes against real sshd.
import { expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { loadCredentials } from "./options.ts"
import { parseJump, parseSshG, resolveRoute, routeRequest } from "./ssh-config.ts"
import { parseTarget } from "./target.ts"

const env = { HOME: "/home/op", USER: "op" }

test("ssh -G's answer gives HostName, User, Port, the keys in order, ProxyJump and HostKeyAlias", () => {
  const text = [
    "user alice",
    "hostname 10.0.0.5",
    "port 2222",
    "identitiesonly yes",
    "hostkeyalias web-key",
    "identityfile ~/.ssh/web_%h_%r",
    "identityfile /keys/second",
    "userknownhostsfile /etc/chimera/known_hosts /x/known_hosts2",
    "proxyjump bastion,ops@[::1]:2200,ssh://jump.example:22",
    "",
  ].join("\n")
  const r = parseSshG(text, "web", ["-p", "2222"], null, env)
  expect(r).toMatchObject({
    alias: "web",
    host: "10.0.0.5",
    user: "alice",
    port: 2222,
    identitiesOnly: true,
    identitiesConfigured: true,
    identityFiles: ["/home/op/.ssh/web_10.0.0.5_alice", "/keys/second"],
    hostKeyAlias: "web-key",
    knownHostsFile: "/etc/chimera/known_hosts",
    proxyCommand: null,
    sshArgs: ["-p", "2222"],
  })
  expect(r.proxyJump).toEqual([
    { host: "bastion" },
    { host: "::1", user: "ops", port: 2200 },
    { host: "jump.example", port: 22 },
  ])
})

test("ssh's built-in key list and a ProxyCommand are told apart from what a file sets", () => {
  const builtIn = ["id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"]
  const text = ["hostname h", ...builtIn.map((f) => `identityfile ~/.ssh/${f}`), "proxycommand nc %h %p"].join("\n")
  const r = parseSshG(text, "h", [], null, env)
  expect(r.identitiesConfigured).toBe(false)
  expect(r.identityFiles[3]).toBe("/home/op/.ssh/id_ed25519")
  expect(r.proxyCommand).toBe("nc %h %p")
  expect(r.proxyJump).toEqual([])
  expect(parseSshG("proxycommand none\nproxyjump none\n", "h", [], null, env)).toMatchObject({
    proxyCommand: null,
    proxyJump: [],
  })
})

test("only what a target spells out goes to ssh as -l and -p; Chimera's defaults do not", () => {
  expect(routeRequest(parseTarget("web"))).toEqual({ host: "web" })
  expect(routeRequest(parseTarget("deploy@web"))).toEqual({ host: "web", user: "deploy" })
  expect(routeRequest(parseTarget("web:22"))).toEqual({ host: "web", port: 22 })
  expect(routeRequest({ name: "x", user: "root", host: "web", port: 22 })).toEqual({
    host: "web",
    user: "root",
    port: 22,
  })
  expect(parseJump("root@[fe80::1]")).toEqual({ host: "fe80::1", user: "root" })
})

test("the real ssh -G reads $HOME's .ssh/config, with explicit -l/-p winning over it", async () => {
  const home = await mkdtemp(join(tmpdir(), "chimera-ssh-config-"))
  try {
    await Bun.write(
      join(home, ".ssh", "config"),
      "Host alias-of-a-unit-test\n  HostName 127.0.0.99\n  User someone\n  Port 2299\n  ProxyJump hop\n",
    )
    const e = { ...process.env, HOME: home }
    expect(await resolveRoute({ host: "alias-of-a-unit-test" }, e)).toMatchObject({
      host: "127.0.0.99",
      user: "someone",
      port: 2299,
      proxyJump: [{ host: "hop" }],
      configFile: join(home, ".ssh", "config"),
    })
    expect(await resolveRoute({ host: "alias-of-a-unit-test", user: "root", port: 22 }, e)).toMatchObject({
      host: "127.0.0.99",
      user: "root",
      port: 22,
    })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test("without an ssh binary the target is dialled as written, with Chimera's defaults", async () => {
  const r = await resolveRoute({ host: "no-ssh-here" }, { HOME: tmpdir(), PATH: "/nonexistent-bin" })
  expect(r).toMatchObject({ host: "no-ssh-here", user: "root", port: 22, fromConfig: false, identityFiles: [] })
})

test("a configuration that says the same of every host is asked once; one that names hosts, for each", async () => {
  const home = await mkdtemp(join(tmpdir(), "chimera-ssh-config-"))
  // An ssh that notes each question before the real one answers it.
  const bin = join(home, "bin")
  const asked = join(home, "asked")
  await Bun.write(join(bin, "ssh"), `#!/bin/sh\necho "$*" >> ${asked}\nexec /usr/bin/ssh "$@"\n`)
  await Bun.spawn(["chmod", "+x", join(bin, "ssh")]).exited
  const questions = async () =>
    (await Bun.file(asked).exists()) ? (await Bun.file(asked).text()).trim().split("\n") : []
  const e = { ...process.env, HOME: home, PATH: `${bin}:${process.env.PATH}` }
  const config = join(home, ".ssh", "config")
  try {
    // Host * alone, with a %h token that each host fills in for itself.
    await Bun.write(config, "Host *\n  User deploy\n  Port 2200\n  IdentityFile ~/.ssh/%h.key\n")
    const [a, b] = await Promise.all(
      ["Web-A.example", "web-b.example"].map((host) => resolveRoute({ host, port: 2201 }, e)),
    )
    expect(a).toMatchObject({ alias: "Web-A.example", host: "web-a.example", user: "deploy", port: 2201 })
    expect(a?.identityFiles).toEqual([join(home, ".ssh", "web-a.example.key")])
    expect(b).toMatchObject({ alias: "web-b.example", host: "web-b.example", user: "deploy", port: 2201 })
    expect(await questions()).toHaveLength(1)

    // An included file that names one host: every host is asked about on its own.
    await rm(asked, { force: true })
    await Bun.write(config, "Include conf.d/*.conf\nHost *\n  User deploy\n")
    await Bun.write(join(home, ".ssh", "conf.d", "db.conf"), "Host db-*.example\n  User postgres\n")
    const [web, db] = await Promise.all(
      ["web-c.example", "db-1.example"].map((host) => resolveRoute({ host, port: 2202 }, e)),
    )
    expect([web?.user, db?.user]).toEqual(["deploy", "postgres"])
    expect(await questions()).toHaveLength(2)

    // A Host * setting that names the host (HostName %h.…) is no answer for others either.
    await rm(asked, { force: true })
    await Bun.write(config, "Host *\n  HostName %h.internal\n")
    const [x, y] = await Promise.all(["x", "y"].map((host) => resolveRoute({ host, port: 2203 }, e)))
    expect([x?.host, y?.host]).toEqual(["x.internal", "y.internal"])
    expect(await questions()).toHaveLength(3)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test("the one question for all hosts is not taken where ssh's answer still depends on the host", async () => {
  const home = await mkdtemp(join(tmpdir(), "chimera-ssh-config-"))
  const e = { ...process.env, HOME: home }
  const config = join(home, ".ssh", "config")
  try {
    // ssh -G canonicalises the name (here an address written short) and reads the file again with it.
    await Bun.write(config, "CanonicalizeHostname yes\nHost *\n  User deploy\n")
    expect(await resolveRoute({ host: "127.1", port: 2204 }, e)).toMatchObject({ host: "127.0.0.1", user: "deploy" })
    // A HostName that `Host *` gives every host is where every host goes, as ssh -G says.
    await Bun.write(config, "Host *\n  HostName 127.0.0.98\n")
    expect(await resolveRoute({ host: "anything", port: 2205 }, e)).toMatchObject({ host: "127.0.0.98" })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test("IdentityFile none names no key file: none is read, and no agent is said so", async () => {
  const r = parseSshG("hostname h\nidentityfile none\n", "h", [], null, env)
  expect(r.identityFiles).toEqual([])
  const c = await loadCredentials({ env: { HOME: "/nonexistent-home" } }, r)
  expect(c).toEqual({
    kind: "none",
    reason:
      "no SSH key: the SSH configuration gives h IdentityFile none and no ssh-agent is running (SSH_AUTH_SOCK unset); pass --identity FILE",
  })
})

test("IdentityFile's %i, %l, %L and %k tokens are filled in as ssh fills them", () => {
  const text = "hostname 10.0.0.5\nuser alice\nhostkeyalias web-key\nidentityfile /k/%i-%l-%L-%k\n"
  const [file] = parseSshG(text, "web", [], null, env).identityFiles
  expect(file).toBe(`/k/${process.getuid?.()}-${hostname()}-${hostname().split(".")[0]}-web-key`)
})
