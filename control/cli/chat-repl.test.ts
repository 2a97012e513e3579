// The one line a chat prints when an exchange ends early.
import { expect, test } from "bun:test"
import { describeFailure } from "./chat-repl.ts"

test("an API refusal shows its status and code as every command's do; a stream's error its code", () => {
  expect(describeFailure({ code: "VALIDATION_FAILED", message: "body.message: too long", status: 422 })).toBe(
    "body.message: too long (422 VALIDATION_FAILED)",
  )
  expect(describeFailure({ code: "PROVIDER_ERROR", message: "the model failed" })).toBe(
    "the model failed (PROVIDER_ERROR)",
  )
})
