import { expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { readlink } from "node:fs/promises"
import { buildTestSystem } from "./nix-fixtures.ts"
import { AGENT_STATE, createTestNode } from "./test-node.ts"

test("a test node's system links are its own and follow a manual switch", async () => {
  const [gen1, gen2] = await Promise.all([buildTestSystem(1), buildTestSystem(2)])
  await using a = await createTestNode({ name: "a", boot: gen1 })
  await using b = await createTestNode({ name: "b", boot: gen2 })
  expect(await a.links()).toEqual({ profile: gen1, current: gen1, booted: gen1 })
  expect(await b.links()).toEqual({ profile: gen2, current: gen2, booted: gen2 })

  await a.switchTo(gen2)
  expect(await a.links()).toEqual({ profile: gen2, current: gen2, booted: gen1 })
  expect((await b.links()).booted).toBe(gen2)
  // The host's own /run is untouched.
  expect(await readlink("/run/current-system").catch(() => null)).not.toBe(gen2)
})

test("an agent started with its default state dir keeps its state on its own node", async () => {
  await using a = await createTestNode({ name: "a" })
  await using b = await createTestNode({ name: "b" })
  expect((await a.exec(["sh", "-c", `echo a > ${AGENT_STATE}/credential`])).code).toBe(0)
  expect((await a.exec(["cat", `${AGENT_STATE}/credential`])).stdout).toBe("a\n")
  expect((await b.exec(["test", "-e", `${AGENT_STATE}/credential`])).code).not.toBe(0)
  expect(existsSync(`${AGENT_STATE}/credential`)).toBe(false)
})
