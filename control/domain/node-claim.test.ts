// The claim's shell, run by a real sh against real processes: a script under way counts while its
// pid still names the same process (its start time), not whatever process takes that pid later.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { CLAIM_NODE, STATE, UNDECIDED_FN } from "./node-claim.ts"

let dir: string
let live: Subprocess
/** The 22nd field of /proc/PID/stat, read here as the script reads it. */
const startOf = async (pid: number) =>
  (await readFile(`/proc/${pid}/stat`, "utf8")).replace(/^.*\) /s, "").split(" ")[19] as string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-node-claim-"))
  live = Bun.spawn(["sleep", "60"])
})
afterAll(async () => {
  live.kill()
  await rm(dir, { recursive: true, force: true })
})

const sh = async (script: string) => {
  const proc = Bun.spawn(["sh", "-c", script.replaceAll(STATE, dir)], { stdout: "pipe", stderr: "pipe" })
  const [out, err, code] = [
    await new Response(proc.stdout).text(),
    await new Response(proc.stderr).text(),
    await proc.exited,
  ]
  return { out: out.trim().split(/\s+/).filter(Boolean).sort(), err, code }
}
const underWay = async (name: string, content: string) => {
  await mkdir(join(dir, name), { recursive: true })
  await writeFile(join(dir, name, "under-way.pid"), content)
}

test("a script under way counts while its pid names the same process; a reused pid, a dead one, or one that ended do not", async () => {
  const started = await startOf(live.pid)
  await underWay("same", `${live.pid} ${started}\n`)
  await underWay("reused", `${live.pid} ${Number(started) + 1}\n`)
  await underWay("older-format", `${live.pid}\n`)
  await underWay("dead", "999999999 1\n")
  await underWay("ended", `${live.pid} ${started}\n`)
  await writeFile(join(dir, "ended", "ended"), "")
  expect((await sh(`${UNDECIDED_FN}\nundecided`)).out).toEqual(["older-format", "same"])
})

test("a claim records its own pid with its start time, and the next claim is refused while it runs", async () => {
  await rm(dir, { recursive: true, force: true })
  const first = await sh(
    `ID=first\n${CLAIM_NODE}\nread -r p t < "$C/under-way.pid"\n[ "$p" = $$ ] && [ "$t" = "$(started $$)" ] && echo recorded`,
  )
  expect(first).toMatchObject({ code: 0, out: ["recorded"] })
  // Its shell has exited without `ended`: the pid is gone, so the node is free again.
  expect((await sh(`ID=second\n${CLAIM_NODE}\necho claimed`)).out).toEqual(["claimed"])
  // One that still runs (its pid and start time, as a claim writes them) holds the node.
  await underWay("running", `${live.pid} ${await startOf(live.pid)}\n`)
  const refused = await sh(`ID=third\n${CLAIM_NODE}\necho claimed`)
  expect(refused.code).toBe(75)
  expect(refused.err).toContain("running")
})
