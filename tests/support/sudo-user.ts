// A non-root login with a sudo password on a test node, for the command API's sudo path: the node's
// mount namespace gets private copies of /etc/passwd, /etc/shadow and /etc/group with the user added,
// and its own /etc/sudoers.d granting that user sudo with a password. Nothing on the host changes;
// the node's sshd (same namespace) sees the user at once. The password is hashed with openssl's
// SHA-512 crypt, as passwd would. Needs Debian's sudo and openssl (scripts/system-deps.ts).
import { chmod, chown, copyFile, mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { TestNode } from "./test-node.ts"
import { requireTool } from "./tools.ts"

export interface SudoUser {
  name: string
  uid: number
  /** The home as the node sees it. */
  home: string
}

/**
 * `authorizedKeys`: the public key line(s) the user logs in with (the testbed's client key); `shell`:
 * the login shell, /bin/bash unless the test needs another (fish, tcsh).
 */
export async function addSudoUser(
  node: TestNode,
  dir: string,
  user: { name: string; uid: number; password: string; authorizedKeys: string; shell?: string },
): Promise<SudoUser> {
  requireTool("sudo")
  const openssl = requireTool("openssl")
  const etc = join(dir, "etc")
  // The node sees `dir/home` as /home: the testbed's own directory (mode 0700) is not one the user
  // could walk through to reach a home inside it.
  const homes = join(dir, "home")
  const home = join(homes, user.name)
  await mkdir(join(etc, "sudoers.d"), { recursive: true })
  await mkdir(join(home, ".ssh"), { recursive: true, mode: 0o700 })
  await writeFile(join(home, ".ssh", "authorized_keys"), user.authorizedKeys, { mode: 0o600 })
  for (const path of [home, join(home, ".ssh"), join(home, ".ssh", "authorized_keys")])
    await chown(path, user.uid, user.uid)

  const hashed = Bun.spawnSync([openssl, "passwd", "-6", "-stdin"], { stdin: Buffer.from(`${user.password}\n`) })
  if (hashed.exitCode !== 0) throw new Error(`openssl passwd failed: ${hashed.stderr.toString()}`)
  const hash = hashed.stdout.toString().trim()

  const append = async (file: string, line: string, mode: number) => {
    const copy = join(etc, file)
    await copyFile(`/etc/${file}`, copy)
    await writeFile(copy, `${(await readFile(copy, "utf8")).trimEnd()}\n${line}\n`)
    await chmod(copy, mode)
  }
  await chmod(homes, 0o755)
  await append(
    "passwd",
    `${user.name}:x:${user.uid}:${user.uid}::/home/${user.name}:${user.shell ?? "/bin/bash"}`,
    0o644,
  )
  await append("group", `${user.name}:x:${user.uid}:`, 0o644)
  await append("shadow", `${user.name}:${hash}:19000:0:99999:7:::`, 0o640)
  const sudoers = join(etc, "sudoers.d", user.name)
  await writeFile(sudoers, `${user.name} ALL=(ALL) ALL\n`)
  await chmod(sudoers, 0o440)

  const binds: [string, string][] = [
    ...["passwd", "group", "shadow", "sudoers.d"].map((f): [string, string] => [join(etc, f), `/etc/${f}`]),
    [homes, "/home"],
  ]
  for (const [from, to] of binds) {
    const r = await node.exec(["mount", "--bind", from, to])
    if (r.code !== 0) throw new Error(`${node.name}: cannot bind ${from} over ${to}: ${r.stderr.trim()}`)
  }
  return { name: user.name, uid: user.uid, home: `/home/${user.name}` }
}
