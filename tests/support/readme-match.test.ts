import { expect, test } from "bun:test"
import { createLineMatcher } from "./readme-match.ts"
import { readmeSteps } from "./readme-steps.ts"

const A = "/nix/store/i4lsmrfgm60zrm17z4xi2j8b0fg1xjk9-web-test-system-1"
const B = "/nix/store/wi6rh8nbq7wb5jnhzccqkkk341v4h5k2-web-test-system-2"

test("times, durations, decimals and ids may differ; words, names and integers may not", () => {
  const m = createLineMatcher()
  const shown = ["4   2026-12-06T01:57:54.167Z  node-1  heal.succeeded   healed in 95 ms", "load 25.05 26.32 18.44"]
  const printed = "9  2027-01-01T00:00:00.000Z  node-1  heal.succeeded  healed in 1200 ms\nload 0.10 0.20 0.30\n"
  expect(m.missing(shown, printed)).toEqual([])
  expect(m.missing(["node-1  heal.failed"], "node-1  heal.succeeded")).toEqual(["node-1  heal.failed"])
  expect(m.missing(["activated generation 2 (test)"], "activated generation 3 (test)")).toHaveLength(1)
  expect(m.missing(["3 targets: 3 ok in 0.07 s"], "3 targets: 2 ok in 0.07 s")).toHaveLength(1)
})

test("a store path, once paired with what was printed, must stay that one, also as a 12-character hash", () => {
  const m = createLineMatcher()
  const other = "/nix/store/0000000000000000000000000000000a-web-test-system-1"
  expect(m.missing([`booted into ${A}`], `booted into ${other}`)).toEqual([])
  // The README's A is this run's `other` from now on: B's hash in its place is refused.
  expect(m.missing([`current ${A}`], `current ${B.replace("system-2", "system-1")}`)).toHaveLength(1)
  expect(m.missing(["node-1  healthy  i4lsmrfgm60z"], "node-1  healthy  000000000000")).toEqual([])
  expect(m.missing(["node-1  healthy  i4lsmrfgm60z"], "node-1  healthy  wi6rh8nbq7wb")).toHaveLength(1)
  expect(m.paste(`chimera nodes set-desired node-1 ${A}`)).toBe(`chimera nodes set-desired node-1 ${other}`)
})

test("tokens and session ids printed by one command are pasted into the next", () => {
  const m = createLineMatcher()
  const shown = "chm_join_SoBW6_Cg13AyCeHYZbPH2fBwGdyqEc1h-HaHcmOeY5o"
  expect(m.missing([shown], "chm_join_abcdefghijklmnopqrstuvwxyz012345\n")).toEqual([])
  expect(m.paste(`chimera-agent --join-token ${shown}`)).toBe(
    "chimera-agent --join-token chm_join_abcdefghijklmnopqrstuvwxyz012345",
  )
  expect(m.missing(['{"status":"ready",…,"id":"x"}'], '{"status":"ready","a":1,"b":2,"id":"x"}')).toEqual([])
  expect(m.missing(['{"status":"ready",…,"id":"x"}'], '{"status":"failed","id":"x"}')).toHaveLength(1)
})

test("console blocks become steps: prompts, continuation lines, expected output, a moment later", () => {
  const md = [
    "```sh",
    "$ not a step",
    "```",
    "```console",
    "$ curl -s x \\",
    "    -d '{}'",
    "{}",
    "",
    "$ bun scripts/testbed.ts shell node-1",
    "node-1# readlink /run/current-system   # a moment later",
    "/nix/store/x",
    "```",
  ].join("\n")
  expect(readmeSteps(md)).toEqual([
    { where: "$", command: "curl -s x \\\n    -d '{}'", expected: ["{}"], eventually: false, line: 5 },
    { where: "$", command: "bun scripts/testbed.ts shell node-1", expected: [], eventually: false, line: 9 },
    {
      where: "node-1",
      command: "readlink /run/current-system   # a moment later",
      expected: ["/nix/store/x"],
      eventually: true,
      line: 10,
    },
  ])
})
