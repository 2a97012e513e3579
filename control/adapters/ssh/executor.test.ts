// Unit tests for the parts of the executor that need no server; tests/ssh.test.ts runs it against
// real sshd nodes.
import { expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { utils } from "ssh2"
import { createSshExecutor } from "./executor.ts"
import { parseSystemState } from "./system-state.ts"

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await mkdtemp(join(tmpdir(), "chimera-executor-"))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}

test("system state lines become store paths, and a missing link becomes null", () => {
  const p = "/nix/store/x1amgwgalc4d2fjfnyv8r50l7z6c20vs-chimera-test-system-1"
  expect(parseSystemState(`${p}\n${p}\n\n`)).toEqual({ profile: p, current: p, booted: null })
  expect(parseSystemState("")).toEqual({ profile: null, current: null, booted: null })
})

test("a missing key is a per-target auth failure that says how to give one, not a throw", async () => {
  const exec = createSshExecutor({ env: { HOME: "/nonexistent-home" }, timeoutMs: 2000 })
  const target = { name: "web-1", user: "root", host: "127.0.0.1", port: 1 }
  const [r] = await exec.execMany([target], "true")
  expect(r?.ok).toBe(false)
  expect(r?.failure?.kind).toBe("auth-failed")
  expect(r?.failure?.message).toContain("pass --identity FILE")
  await exec.close()
})

test("an encrypted key file or a public one is an auth failure naming the file and the way out", async () => {
  await using dir = await tempDir()
  const encrypted = join(dir.path, "id_enc")
  const pub = join(dir.path, "id_ed25519.pub")
  const pair = utils.generateKeyPairSync("ed25519", { passphrase: "secret", cipher: "aes256-ctr", rounds: 16 })
  await writeFile(encrypted, pair.private, { mode: 0o600 })
  await writeFile(pub, pair.public)
  const target = { name: "web-1", user: "root", host: "127.0.0.1", port: 1 }
  for (const [identity, says] of [
    [encrypted, "passphrase"],
    [pub, "no private key"],
  ] as const) {
    const exec = createSshExecutor({ identity, timeoutMs: 2000 })
    const [r] = await exec.execMany([target], "true")
    expect(r?.failure?.kind).toBe("auth-failed")
    expect(r?.failure?.message).toStartWith("web-1: ")
    expect(r?.failure?.message).toContain(identity)
    expect(r?.failure?.message).toContain(says)
    await exec.close()
  }
})

test("an SSH_AUTH_SOCK that leads to no agent is an auth failure naming the socket and the way out", async () => {
  const exec = createSshExecutor({ env: { HOME: "/nonexistent-home", SSH_AUTH_SOCK: "/nonexistent/agent.sock" } })
  const [r] = await exec.execMany([{ name: "web-1", user: "root", host: "127.0.0.1", port: 1 }], "true")
  expect(r?.failure?.kind).toBe("auth-failed")
  expect(r?.failure?.message).toContain("/nonexistent/agent.sock")
  expect(r?.failure?.message).toContain("--identity")
  await exec.close()
})
