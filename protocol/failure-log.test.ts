import { expect, test } from "bun:test"
import { failureLog, REPEAT_MS } from "./failure-log.ts"
import type { Logger } from "./log.ts"

const captured = () => {
  const lines: { level: string; msg: string; failures?: number }[] = []
  const push = (level: string) => (msg: string, f?: Record<string, unknown>) => void lines.push({ level, msg, ...f })
  const log: Logger = { debug: push("debug"), info: push("info"), warn: push("warning"), error: push("error") }
  return { lines, log }
}

test("a failure that lasts is said once, again each minute with its count, and once when it works again", () => {
  const { lines, log } = captured()
  let at = 0
  const failures = failureLog(log, "reading the outbox failed", () => at)
  for (; at <= REPEAT_MS * 2; at += 1000) failures.failed(new Error("Failed to connect"))
  failures.worked()
  failures.worked()
  expect(lines.map((l) => [l.level, l.msg, l.failures])).toEqual([
    ["error", "reading the outbox failed", undefined],
    ["error", "reading the outbox failed", 61],
    ["error", "reading the outbox failed", 121],
    ["warning", "recovered from: reading the outbox failed", 121],
  ])
})
