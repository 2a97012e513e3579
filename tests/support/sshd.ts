// A real OpenSSH server for one test node: Debian's /usr/sbin/sshd started inside the node's mount
// namespace (so a session sees the node's own /run and system profile), listening on the node's
// loopback address only, with its own ed25519 host key. Everything it reads or writes (config, host
// key, pid file, log) sits in one directory of the testbed; the authorized_keys file is the testbed's,
// never ~/.ssh. For tests sshd runs in the foreground as our child; for `scripts/testbed.ts up` it
// daemonises, so the fleet outlives the script. Either way it writes its pid file only once it
// listens, which is how readiness is seen.
import { readFileSync } from "node:fs"
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { utils } from "ssh2"
import type { TestNode } from "./test-node.ts"
import { requireTool } from "./tools.ts"

export interface KeyPair {
  privateKey: string
  /** One line, `ssh-ed25519 AAAA… comment`. */
  publicKey: string
}

/** An ed25519 key pair in OpenSSH format, made in-process (ssh-keygen would cost a spawn per node). */
export function ed25519(comment: string): KeyPair {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519", { comment })
    // ssh2 1.17 drops a public key's leading zero byte (1 key in 256), which OpenSSH then cannot load
    // ("error in libcrypto"): a well-formed blob is 4 + 11 ("ssh-ed25519") + 4 + 32 bytes.
    const blob = Buffer.from(pair.public.split(" ")[1] ?? "", "base64")
    if (blob.length === 51) return { privateKey: pair.private, publicKey: pair.public.trim() }
  }
}

export interface SshdOptions {
  dir: string
  address: string
  port: number
  authorizedKeysFile: string
  hostKey: KeyPair
  /** Daemonise, so the sshd outlives this process (`scripts/testbed.ts up`); default: a child of ours. */
  detached?: boolean
}

export interface Sshd {
  readonly pidFile: string
  readonly logFile: string
  pid(): Promise<number | null>
  start(): Promise<void>
  stop(): Promise<void>
}

function _config(o: SshdOptions): string {
  return [
    `ListenAddress ${o.address}:${o.port}`,
    `HostKey ${join(o.dir, "ssh_host_ed25519_key")}`,
    `PidFile ${join(o.dir, "sshd.pid")}`,
    // Root's key is the testbed's; other logins (tests/support/sudo-user.ts) keep theirs in their home,
    // since sshd reads the file as the user, who cannot enter the testbed's directory.
    `AuthorizedKeysFile ${o.authorizedKeysFile} %h/.ssh/authorized_keys`,
    "StrictModes no",
    "UsePAM no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin prohibit-password",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    // Fan-out benchmarks open 20+ connections at once; the default 10:30:100 would drop some.
    "MaxStartups 200:30:400",
    "MaxSessions 64",
    // No test may reach for a binary cache: nix commands run over SSH see this, as the suite's do.
    // tmux's default socket dir is /tmp, which the nodes share with the host: /run keeps each node's
    // tmux server (deploy sessions) its own.
    'SetEnv "NIX_CONFIG=substituters =" TMUX_TMPDIR=/run',
    "Subsystem sftp internal-sftp",
    "LogLevel VERBOSE",
    "",
  ].join("\n")
}

/** Alive and not a zombie: a daemonised sshd is reaped by whatever init this machine has, or never. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

/**
 * The pid in `pidFile` if that process is alive and still the sshd started with `configFile` (a pid
 * outlives its process in the file, and the kernel may have given it to another process since).
 */
export function sshdPid(pidFile: string, configFile: string): number | null {
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8")
    } catch {
      return ""
    }
  }
  const n = Number.parseInt(read(pidFile), 10)
  if (!Number.isInteger(n) || n <= 0 || !alive(n)) return null
  return read(`/proc/${n}/cmdline`).includes(configFile) ? n : null
}

/**
 * Stops sshd's listener (open sessions are left to the caller) with SIGKILL: the kernel closes the
 * listening socket as the process dies, with no window in which a SIGTERM handler has yet to run and a
 * new connection could still be accepted. The signal goes out before the first await, so
 * `void stopSshd()` from a synchronous callback (a deploy's progress hook) has shut the door by the
 * time the callback returns.
 */
export async function stopSshd(pidFile: string, configFile: string): Promise<void> {
  const p = sshdPid(pidFile, configFile)
  if (!p) return
  process.kill(p, "SIGKILL")
  for (let i = 0; alive(p) && i < 400; i++) await Bun.sleep(5)
  await rm(pidFile, { force: true })
}

export async function prepareSshd(node: TestNode, o: SshdOptions): Promise<Sshd> {
  const sshd = requireTool("sshd")
  await mkdir(o.dir, { recursive: true })
  const hostKeyFile = join(o.dir, "ssh_host_ed25519_key")
  await writeFile(hostKeyFile, o.hostKey.privateKey, { mode: 0o600 })
  await chmod(hostKeyFile, 0o600)
  await writeFile(`${hostKeyFile}.pub`, `${o.hostKey.publicKey}\n`)
  const configFile = join(o.dir, "sshd_config")
  await writeFile(configFile, _config(o))
  const pidFile = join(o.dir, "sshd.pid")
  const logFile = join(o.dir, "sshd.log")

  const pid = async () => sshdPid(pidFile, configFile)
  let child: Subprocess | null = null

  return {
    pidFile,
    logFile,
    pid,
    async start() {
      if (await pid()) return
      await rm(pidFile, { force: true })
      // sshd's privilege separation directory; /run is the node's own tmpfs.
      const mk = await node.exec(["mkdir", "-p", "-m", "0755", "/run/sshd"])
      if (mk.code !== 0) throw new Error(`${node.name}: cannot create /run/sshd: ${mk.stderr}`)
      const logStart = await readFile(logFile, "utf8").then(
        (t) => t.length,
        () => 0,
      )
      const log = async () => (await readFile(logFile, "utf8").catch(() => "")).slice(logStart)
      if (o.detached) {
        const launched = await node.exec([sshd, "-f", configFile, "-E", logFile])
        if (launched.code !== 0)
          throw new Error(`${node.name}: sshd exited ${launched.code}: ${`${launched.stderr}\n${await log()}`.trim()}`)
      } else {
        // In the foreground (-D) it stays our child: bun kills it with everything else a test spawned
        // if the test process dies or a test times out, where a daemon would be left listening.
        // setpriv --pdeathsig: and if this process is SIGKILLed, the kernel takes the sshd down with it.
        const setpriv = Bun.which("setpriv")
        const argv = [sshd, "-D", "-f", configFile, "-E", logFile]
        child = node.spawn(setpriv ? [setpriv, "--pdeathsig", "KILL", ...argv] : argv, {
          stdout: "ignore",
          stderr: "ignore",
        })
      }
      for (let i = 0; ; i++) {
        if (await pid()) return
        const text = await log()
        const exited = child !== null && child.exitCode !== null
        if (exited || /fatal|Cannot bind/i.test(text) || i > 1000)
          throw new Error(`${node.name}: sshd did not start on ${o.address}:${o.port}: ${text.trim() || "no log"}`)
        await Bun.sleep(5)
      }
    },
    async stop() {
      await stopSshd(pidFile, configFile)
      await child?.exited
      child = null
    },
  }
}
