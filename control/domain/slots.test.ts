import { expect, test } from "bun:test"
import { Slots } from "./slots.ts"

test("each key gets a slot no other key holds; a forgotten key's slot goes to the next new key", () => {
  const slots = new Slots()
  expect([slots.add("a"), slots.add("b"), slots.add("c")]).toEqual([0, 1, 2])
  slots.delete("b")
  slots.delete("missing")
  expect(slots.get("b")).toBeUndefined()
  expect(slots.size).toBe(2)
  expect(slots.add("d")).toBe(1)
  expect(slots.add("e")).toBe(3)
  expect([...slots.entries()].sort()).toEqual([
    ["a", 0],
    ["c", 2],
    ["d", 1],
    ["e", 3],
  ])
})
