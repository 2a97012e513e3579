// One control plane to an SQLite file: a second claim, from this process or another, is refused with
// a message that says what to do; releasing the claim (or the process ending) frees the file.
import { afterAll, expect, test } from "bun:test"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { claimSqliteFile } from "./sqlite-owner.ts"

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})
const fileIn = async () => {
  const dir = await mkdtemp(join(tmpdir(), "chimera-owner-"))
  dirs.push(dir)
  return join(dir, "chimera.db")
}

test("a second claim on a file is refused until the first is released", async () => {
  const file = await fileIn()
  const first = claimSqliteFile(file)
  expect(((await stat(`${file}-owner`)).mode & 0o777).toString(8)).toBe("600")
  expect(() => claimSqliteFile(file)).toThrow(`another control plane is running on ${file}`)
  first.release()
  first.release()
  claimSqliteFile(file).release()
})

test("another process's claim is refused while this one holds the file, and taken once it ends", async () => {
  const file = await fileIn()
  const claim = (hold: number) =>
    Bun.spawn(
      [
        process.execPath,
        "-e",
        `const { claimSqliteFile } = await import(${JSON.stringify(join(import.meta.dir, "sqlite-owner.ts"))})
         try { claimSqliteFile(${JSON.stringify(file)}); console.log("claimed"); await Bun.sleep(${hold}) }
         catch (error) { console.log(error.message) }`,
      ],
      { stdout: "pipe", stderr: "inherit" },
    )
  const mine = claimSqliteFile(file)
  expect(await new Response(claim(0).stdout).text()).toContain("another control plane is running on")
  mine.release()
  // A holder killed outright leaves no lock behind: the operating system drops it with the process.
  const holder = claim(60_000)
  const reader = holder.stdout.getReader()
  expect(new TextDecoder().decode((await reader.read()).value)).toContain("claimed")
  expect(() => claimSqliteFile(file)).toThrow("another control plane is running on")
  holder.kill("SIGKILL")
  await holder.exited
  claimSqliteFile(file).release()
})
