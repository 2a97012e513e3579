// How much of a command's output the control plane keeps. POST /api/run-command answers with the
// command's stdout and stderr, JSON-escaped and scanned for secrets; with 16 MiB kept of each,
// `head -c 16000000 /dev/zero` (low risk: any operator may run it) was a 96 MB answer and held 2.4 GB
// of the control plane's memory for the one request, and three at once would have taken most hosts
// down. The control plane's executor keeps 1 MiB of each stream, with a note, as the relay keeps 64
// KiB a node. A real sshd in a test node, on 127.0.0.1.
import { describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { API_OUTPUT_BYTES, commandTargets } from "../control/adapters/ssh/command-targets.ts"
import { freePort } from "./support/control-plane.ts"
import { ed25519, prepareSshd } from "./support/sshd.ts"
import { createTestNode } from "./support/test-node.ts"

describe("a command's output through the control plane's executor", () => {
  test("each stream keeps its first and last half MiB, and the answer says how much between was left out", async () => {
    await using node = await createTestNode({ name: "output-cap" })
    const dir = await mkdtemp(join(tmpdir(), "chimera-output-cap-"))
    try {
      const client = ed25519("output-cap")
      const hostKey = ed25519("output-cap-host")
      const identity = join(dir, "id_ed25519")
      const authorizedKeys = join(dir, "authorized_keys")
      const knownHosts = join(dir, "known_hosts")
      const port = freePort()
      await writeFile(identity, client.privateKey, { mode: 0o600 })
      await writeFile(authorizedKeys, `${client.publicKey}\n`, { mode: 0o600 })
      await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey.publicKey}\n`)
      const sshd = await prepareSshd(node, {
        dir: join(dir, "sshd"),
        address: "127.0.0.1",
        port,
        authorizedKeysFile: authorizedKeys,
        hostKey,
      })
      await sshd.start()
      try {
        const targets = commandTargets(
          { nodes: [{ name: "n1", address: `root@127.0.0.1:${port}`, tags: [] }], targets: [] },
          { identity, knownHosts },
        )
        const target = targets.resolve("n1")
        if (!target) throw new Error("n1 did not resolve")
        // Each stream keeps its first and its last half MiB: a command's last lines say how it ended.
        const r = await targets.executor.exec(
          target,
          "echo first; head -c 4000000 /dev/zero | tr '\\0' a; echo; echo last; { echo oops; head -c 3000000 /dev/zero; echo; echo 'error: out of space'; } >&2",
        )
        expect(r.exitCode).toBe(0)
        expect(r.stdout.length).toBeLessThan(API_OUTPUT_BYTES + 100)
        expect(r.stdout).toStartWith("first\n")
        expect(r.stdout).toMatch(/\n\[\d+ bytes of output left out\]\n/)
        expect(r.stdout).toEndWith("\nlast\n")
        expect(r.stderr.length).toBeLessThan(API_OUTPUT_BYTES + 100)
        expect(r.stderr).toStartWith("oops\n")
        expect(r.stderr).toEndWith("\nerror: out of space\n")
        const left = Number(/\[(\d+) bytes of output left out\]/.exec(r.stdout)?.[1])
        expect(left + API_OUTPUT_BYTES).toBe("first\n".length + 4_000_000 + "\nlast\n".length)
        const small = await targets.executor.exec(target, "echo hello")
        expect(small.stdout).toBe("hello\n")
        await targets.executor.close()
      } finally {
        await sshd.stop()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
