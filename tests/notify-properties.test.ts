// Whatever a notice holds (titles and node names from agents: long, multi-line, emoji, control
// characters, mrkdwn), every channel's payload stays within what its service accepts: Slack's Block
// Kit limits and PagerDuty's event rules, checked by their local servers over HTTP; Jira's summary and
// ADF rules; and no error text ever keeps a secret it was given.
import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { scrub } from "../control/adapters/notify/http.ts"
import { adf } from "../control/adapters/notify/jira.ts"
import { clip, headline } from "../control/adapters/notify/notice-text.ts"
import { createPagerDutyChannel } from "../control/adapters/notify/pagerduty.ts"
import { createSlackChannel, slackMessage } from "../control/adapters/notify/slack.ts"
import type { Notice } from "../control/domain/notifications.ts"
import { validAdf } from "./support/jira-server.ts"
import { startPagerDuty, startSlack } from "./support/notify-servers.ts"

const text = (maxLength: number) => fc.string({ unit: "binary", maxLength })

const anyNotice: fc.Arbitrary<Notice> = fc.record({
  incidentId: fc.string({ minLength: 1, maxLength: 80 }),
  step: fc.constantFrom("opened", "updated", "resolved", "test"),
  node: text(300),
  problem: text(100),
  severity: fc.constantFrom("info", "warning", "critical"),
  title: fc.string({ unit: "binary", minLength: 1, maxLength: 2000 }),
  message: text(8000),
  closures: fc.record({ desired: text(300), current: text(300) }, { requiredKeys: [] }),
  dashboardUrl: fc.option(fc.webUrl(), { nil: undefined }),
  at: fc
    .date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true })
    .map((d) => d.toISOString()),
})

describe("channel payloads for any notice", () => {
  test("Slack accepts the Block Kit message, and no text from the notice can mention anyone", async () => {
    await using slack = startSlack()
    const channel = createSlackChannel({ webhookUrl: slack.webhookUrl }, { timeoutMs: 10_000 })
    await fc.assert(
      fc.asyncProperty(anyNotice, async (notice) => {
        const result = await channel.send(notice)
        expect(result).toEqual({ ok: true })
        const mrkdwn = JSON.stringify(
          slackMessage(notice).blocks.filter((b) => (b as { type: string }).type !== "header"),
        )
        expect(mrkdwn).not.toMatch(/<[!@#]/)
      }),
      { numRuns: 150 },
    )
  })

  test("PagerDuty accepts every trigger and resolve", async () => {
    await using pd = startPagerDuty()
    const channel = createPagerDutyChannel({ routingKey: pd.routingKey, url: pd.enqueueUrl }, { timeoutMs: 10_000 })
    await fc.assert(
      fc.asyncProperty(anyNotice, async (notice) => {
        expect((await channel.send(notice)).ok).toBe(true)
      }),
      { numRuns: 150 },
    )
  })

  test("Jira's summary is one non-empty line of at most 255 units and the description valid ADF", () => {
    fc.assert(
      fc.property(anyNotice, (notice) => {
        const summary = clip(headline(notice), 255)
        expect(summary).not.toMatch(/[\r\n]/)
        expect(summary.length).toBeLessThanOrEqual(255)
        expect(summary.trim()).not.toBe("")
        expect(validAdf(adf(notice))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })
})

describe("errors", () => {
  test("a secret inside any text is gone after scrubbing, in clear or URL-encoded", () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+=:-_"),
          minLength: 8,
          maxLength: 64,
        }),
        text(200),
        text(200),
        (secret, before, after) => {
          const out = scrub(`${before}${secret}${after} ${encodeURIComponent(secret)}`, [secret])
          expect(out).not.toContain(secret)
          expect(out).not.toContain(encodeURIComponent(secret))
        },
      ),
      { numRuns: 500 },
    )
  })
})
