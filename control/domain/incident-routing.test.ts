// Who hears of an incident's opening: minimum severities per channel, the problems that page, and
// quiet hours read on the configured zone's wall clock (wrapping past midnight).
import { describe, expect, test } from "bun:test"
import { ChimeraConfig } from "../config-schema.ts"
import { incidentPolicy, isQuiet, openingChannels } from "./incident-routing.ts"

const ALL = ["slack", "pagerduty", "email", "servicenow"]
const policy = (over: Record<string, unknown> = {}) =>
  incidentPolicy({ ...ChimeraConfig.parse({}).incidents, ...over } as ChimeraConfig["incidents"])

describe("incident routing", () => {
  test("by default a critical heal failure goes everywhere; an info problem only to Slack", () => {
    const at = new Date("2026-01-01T12:00:00Z")
    expect(openingChannels(policy(), ALL, { problem: "heal-failed", severity: "critical" }, at)).toEqual(ALL)
    expect(openingChannels(policy(), ALL, { problem: "heal-failed", severity: "info" }, at)).toEqual(["slack"])
  })

  test("only the configured problems page", () => {
    const at = new Date("2026-01-01T12:00:00Z")
    const p = policy({ page: ["unreachable"] })
    expect(openingChannels(p, ALL, { problem: "heal-failed", severity: "critical" }, at)).not.toContain("pagerduty")
    expect(openingChannels(p, ALL, { problem: "unreachable", severity: "critical" }, at)).toContain("pagerduty")
  })

  test("quiet hours wrap past midnight in their own zone; then only critical incidents page", () => {
    const p = policy({ quiet_hours: "22:00-07:00", quiet_hours_timezone: "Europe/Paris", page: ["deploy-failed"] })
    // 21:30 UTC is 22:30 in Paris in winter; 06:30 UTC is 07:30 there.
    expect(isQuiet(p, new Date("2026-01-01T21:30:00Z"))).toBe(true)
    expect(isQuiet(p, new Date("2026-01-02T05:59:00Z"))).toBe(true)
    expect(isQuiet(p, new Date("2026-01-02T06:30:00Z"))).toBe(false)
    expect(isQuiet(p, new Date("2026-01-01T20:30:00Z"))).toBe(false)
    const night = new Date("2026-01-01T23:00:00Z")
    expect(openingChannels(p, ALL, { problem: "deploy-failed", severity: "warning" }, night)).toEqual([
      "slack",
      "email",
      "servicenow",
    ])
    expect(openingChannels(p, ALL, { problem: "deploy-failed", severity: "critical" }, night)).toContain("pagerduty")
    expect(
      openingChannels(p, ALL, { problem: "deploy-failed", severity: "warning" }, new Date("2026-01-01T12:00:00Z")),
    ).toContain("pagerduty")
  })

  test("a channel's minimum severity holds back what is below it", () => {
    const p = policy({ slack_min_severity: "critical", ticket_min_severity: "info" })
    const at = new Date("2026-01-01T12:00:00Z")
    expect(openingChannels(p, ALL, { problem: "drift-unhealed", severity: "warning" }, at)).toEqual([
      "email",
      "servicenow",
    ])
  })
})
