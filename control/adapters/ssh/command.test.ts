// A command that outlives its budget is killed on the node, not left running: the SSH "signal" request
// must reach the server although the command's stdin was closed at the start. The server is ssh2's own,
// on a Unix socket, and its protocol trace shows every channel request that arrives (its Session
// object hands requests made after `exec` to no handler); tests/ssh.test.ts runs commands on real sshd.
import { expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client, Server } from "ssh2"
import { ed25519 } from "../../../tests/support/sshd.ts"
import { runCommand } from "./command.ts"

test("at the timeout the remote command is sent SIGKILL, and what it printed is kept", async () => {
  const dir = await mkdtemp(join(tmpdir(), "chimera-command-"))
  const trace: string[] = []
  const signals = () => trace.filter((line) => /CHANNEL_REQUEST \(r:\d+, signal/.test(line))
  const server = new Server({ hostKeys: [ed25519("host").privateKey], debug: (line) => trace.push(line) }, (conn) => {
    conn.on("authentication", (ctx) => ctx.accept())
    conn.on("session", (accept) => {
      const session = accept()
      session.on("exec", (acceptExec) => {
        const channel = acceptExec()
        // Like a hung process: it prints a line, then nothing, and never exits by itself.
        channel.write("started\n")
      })
    })
  })
  const socket = join(dir, "sshd.sock")
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  const client = new Client()
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve())
      client.once("error", reject)
      client.connect({ sock: connect(socket), username: "root", hostVerifier: () => true })
    })
    const target = { name: "web-1", user: "root", host: "127.0.0.1", port: 22 }
    const outcome = await runCommand(client, target, "sleep 600", 300)
    expect(outcome.failure?.kind).toBe("timeout")
    expect(outcome.stdout).toBe("started\n")
    for (let i = 0; i < 100 && signals().length === 0; i++) await Bun.sleep(10)
    expect(signals()).toHaveLength(1)
  } finally {
    client.end()
    server.close()
    await rm(dir, { recursive: true, force: true })
  }
})
