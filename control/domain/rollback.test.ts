import { expect, test } from "bun:test"
import { parseGenerations } from "./rollback.ts"

test("generations are parsed with their store paths, their times in UTC and the current one marked", () => {
  const out = [
    "1 1795313580 /nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1",
    "2 1795313650 /nix/store/y1mlmacm344nc9ik51ajfsqv9pl6m87x-chimera-test-system-2 (current)",
    "garbage line",
  ].join("\n")
  expect(parseGenerations(out)).toEqual([
    {
      number: 1,
      date: "2026-11-22T02:13:00.000Z",
      path: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1" as never,
      current: false,
    },
    {
      number: 2,
      date: "2026-11-22T02:14:10.000Z",
      path: "/nix/store/y1mlmacm344nc9ik51ajfsqv9pl6m87x-chimera-test-system-2" as never,
      current: true,
    },
  ])
})
