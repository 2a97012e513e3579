import { expect, test } from "bun:test"
import { globals, takeGlobalFlags } from "./globals.ts"

test("global flags are taken wherever they stand, but never after --, where they are the command's", () => {
  const rest = takeGlobalFlags(["exec", "-v", "--targets", "x", "--", "grep", "-v", "--debug", "foo"])
  expect(rest).toEqual(["exec", "--targets", "x", "--", "grep", "-v", "--debug", "foo"])
  expect(globals).toEqual({ verbose: true, debug: false })
})
