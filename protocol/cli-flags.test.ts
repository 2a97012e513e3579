import { describe, expect, test } from "bun:test"
import type { ArgsDef } from "citty"
import { extraWords, firstWord, nearestFlag, repeatedValues, unknownFlags, unknownFlagsMessage } from "./cli-flags.ts"

const ARGS = {
  "dry-run": { type: "boolean" },
  targets: { type: "string", alias: ["t"] },
  healthCmd: { type: "string" },
  level: { type: "enum", options: ["a", "b"] },
  verbose: { type: "boolean", alias: "v" },
  file: { type: "positional", required: false },
} satisfies ArgsDef

describe("unknownFlags", () => {
  test("known by key, kebab-case, camelCase, alias, --no- for booleans, and =value", () => {
    const given = [
      "--dry-run",
      "--dryRun",
      "--no-dry-run",
      "-t",
      "x",
      "--health-cmd",
      "y",
      "--healthCmd=z",
      "--level",
      "a",
      "-v",
      "f",
    ]
    expect(unknownFlags(ARGS, given)).toEqual([])
  })

  test("names each unknown flag, long and short, as written", () => {
    expect(unknownFlags(ARGS, ["--dryrun", "-x", "--no-targets", "--bogus=1"])).toEqual([
      "--dryrun",
      "-x",
      "--no-targets",
      "--bogus",
    ])
  })

  test("a flag's value is not read as a flag, nor is anything after --", () => {
    expect(unknownFlags(ARGS, ["--targets", "--weird", "-t", "-y"])).toEqual([])
    expect(unknownFlags(ARGS, ["--", "ls", "--weird"])).toEqual([])
    expect(unknownFlags(ARGS, ["-", "-5", "word"])).toEqual([])
  })

  test("grouped short flags: a value-taking one ends the group or takes the next word", () => {
    expect(unknownFlags(ARGS, ["-vt", "--x"])).toEqual([])
    expect(unknownFlags(ARGS, ["-vtvalue", "-vq"])).toEqual(["-q"])
  })

  test("extraWords: the words past the positionals, after `--` and negative numbers too, never a flag's value", () => {
    expect(extraWords(ARGS, ["a", "--targets", "x", "b"])).toEqual(["b"])
    expect(extraWords(ARGS, ["a", "--", "b", "--weird"])).toEqual(["b", "--weird"])
    expect(extraWords(ARGS, ["--", "a"])).toEqual([])
    expect(extraWords(ARGS, ["a", "-5", "--targets", "-6"])).toEqual(["-5"])
    expect(extraWords({ ...ARGS, command: { type: "positional" } }, ["a", "--", "b", "c"])).toEqual([])
  })

  test("firstWord skips flags and their values to find a subcommand's name", () => {
    expect(firstWord(["--targets", "x", "-v", "list", "--y"], ARGS)).toBe(3)
    expect(firstWord(["--", "list"], ARGS)).toBe(-1)
  })

  test("the nearest flag within two edits is suggested, none further", () => {
    expect(nearestFlag(ARGS, "--dryrun")).toBe("--dry-run")
    expect(nearestFlag(ARGS, "--health-cm")).toBe("--health-cmd")
    expect(nearestFlag(ARGS, "--completely-else")).toBeNull()
    expect(unknownFlagsMessage("chimera deploy", ARGS, ["--dryrun", "-x"])).toBe(
      "unknown options --dryrun (did you mean --dry-run?), -x for chimera deploy; see chimera deploy --help",
    )
  })

  test("repeatedValues gives every value of a repeated flag, both spellings, up to --", () => {
    const argv = [
      "--health-cmd",
      "a",
      "--targets",
      "x",
      "--health-cmd=b c",
      "--health-cmd",
      "-v",
      "--",
      "--health-cmd",
      "d",
    ]
    expect(repeatedValues(argv, "health-cmd")).toEqual(["a", "b c", "-v"])
    expect(repeatedValues(argv, "health-url")).toEqual([])
  })
})
