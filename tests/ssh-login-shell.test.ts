// An operator's command under a login shell that is not sh: sshd hands the command to the login
// shell, so the `timeout` wrapper that stops it on the node must be read alike by fish and tcsh, and
// the command inside it must still be read by that shell, as it would be unwrapped. Real sshd, real
// fish and tcsh (Debian's), one login of each on its own test node.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { join } from "node:path"
import { createSshExecutor, type SshExecutor } from "../control/adapters/ssh/index.ts"
import { parseTarget } from "../control/adapters/ssh/target.ts"
import { addSudoUser } from "./support/sudo-user.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { requireTool, run } from "./support/tools.ts"

setDefaultTimeout(60_000)

let tb: Testbed
let exec: SshExecutor
const SHELLS = ["fish", "tcsh"] as const

beforeAll(async () => {
  const paths = SHELLS.map(requireTool)
  tb = await createTestbed({ nodes: SHELLS.length, prefix: "shell" })
  const authorizedKeys = await Bun.file(tb.authorizedKeysFile).text()
  for (const [i, shell] of SHELLS.entries())
    await addSudoUser(tb.nodes[i]!.node, join(tb.dir, shell), {
      name: `${shell}-user`,
      uid: 1600 + i,
      password: "unused-password-1",
      authorizedKeys,
      shell: paths[i],
    })
  exec = createSshExecutor({ identity: tb.identityFile, knownHosts: tb.knownHostsFile })
})
afterAll(async () => {
  await exec?.close()
  await tb?.stop()
})

const target = (i: number) => parseTarget(`${SHELLS[i]}-user@${tb.nodes[i]!.address}`)

describe("a command stopped on the node at its timeout, under a login shell that is not sh", () => {
  test("fish runs it in its own syntax, with its output and exit status; quotes, \\ and ! pass as typed", async () => {
    const r = await exec.exec(target(0), "set x 'it\\'s!'; echo $x a\\\\b; echo two\nexit 3", { stopOnNode: true })
    expect(r).toMatchObject({ exitCode: 3, stdout: "it's! a\\b\ntwo\n" })
  })

  test("tcsh runs it, with its output and exit status", async () => {
    const r = await exec.exec(target(1), "set x = 'q!' ; echo $x $shell ; exit 4", { stopOnNode: true })
    expect(r).toMatchObject({ exitCode: 4, stdout: `q! ${requireTool("tcsh")}\n` })
  })

  test("under fish, what the command started is gone once the timeout has killed it", async () => {
    const tag = String(Math.floor(Math.random() * 1e9)).padStart(9, "0")
    const alive = async () => (await run(["pgrep", "-f", `sleep 400[01]\\.${tag}`])).stdout.trim()
    const r = await exec.exec(target(0), `sleep 4000.${tag} &; sleep 4001.${tag}`, {
      stopOnNode: true,
      timeoutMs: 2_000,
    })
    expect(r.failure?.kind).toBe("timeout")
    let left = await alive()
    for (let i = 0; i < 50 && left !== ""; i++) {
      await Bun.sleep(100)
      left = await alive()
    }
    expect(left).toBe("")
  })
})
