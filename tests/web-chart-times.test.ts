// A node's chart says times as the dashboard's tables do: local, 24-hour. uPlot's own time axis
// labels read "11:55pm" and "12am" beside tables that say 23:55:12. The axis is drawn on a canvas, so
// the test reads the labels uPlot drew (its record of them, on the chart's element), in a browser whose
// time zone puts local midnight inside the chart's 15 minutes: the axis then also says each day's date.
// The legend under the cursor gives the sample's time as the tables write it. Real Chromium, real API.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { signInWithToken } from "./support/dashboard.ts"
import { waitFor } from "./support/wait.ts"

let cp: TestControlPlane
let browser: TestBrowser

beforeAll(async () => {
  cp = await startInProcess()
  browser = await launchBrowser()
})
afterAll(async () => {
  await browser?.close()
  await cp?.stop()
})

const DAY_MIN = 24 * 60
const two = (n: number) => String(n).padStart(2, "0")

/**
 * A time zone (ICU's custom "GMT+hh:mm") in which local midnight was `minutesAgo` minutes ago, and its
 * offset from UTC in minutes.
 */
function zoneWithMidnight(minutesAgo: number, now = new Date()): { id: string; offset: number } {
  const utc = now.getUTCHours() * 60 + now.getUTCMinutes()
  let offset = (((minutesAgo - utc) % DAY_MIN) + DAY_MIN) % DAY_MIN
  if (offset > DAY_MIN / 2) offset -= DAY_MIN
  const abs = Math.abs(offset)
  return { id: `GMT${offset < 0 ? "-" : "+"}${two(Math.floor(abs / 60))}:${two(abs % 60)}`, offset }
}

/** `ms` as that zone's local date and minute: ["2026-12-07", 1435]. */
function local(ms: number, offset: number): [string, number] {
  const d = new Date(ms + offset * 60_000)
  const day = `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`
  return [day, d.getUTCHours() * 60 + d.getUTCMinutes()]
}

test("a node's chart labels its time axis and legend in 24-hour local time, with the dates across midnight", async () => {
  const credential = await enrollNode(cp, "clock-1")
  const beat = await call(cp, credential, "POST", "/api/agent/clock-1/heartbeat", heartbeatBody("clock-1"))
  expect(beat.status).toBe(200)
  const zone = zoneWithMidnight(5)
  const page = await browser.page()
  const cdp = await page.context().newCDPSession(page)
  await cdp.send("Emulation.setTimezoneOverride", { timezoneId: zone.id })
  await signInWithToken(page, cp.url, cp.adminToken)
  await page.getByRole("navigation", { name: "Views" }).waitFor()
  await page.goto(`${cp.url}/#/nodes/clock-1`)
  const chart = page.getByTestId("health-chart")
  await chart.locator("canvas").waitFor()
  const drawn = await waitFor(
    "the chart's drawn time axis",
    () => chart.getAttribute("data-ticks"),
    (t) => t !== null,
  )
  const ticks = JSON.parse(drawn ?? "[]") as string[]
  const from = Date.parse(`${await chart.getAttribute("data-from")}`)
  const to = Date.parse(`${await chart.getAttribute("data-to")}`)
  const [fromDay, fromMinute] = local(from, zone.offset)
  const [toDay, toMinute] = local(to, zone.offset)
  expect(fromDay).not.toBe(toDay)

  expect(ticks.length).toBeGreaterThanOrEqual(3)
  for (const label of ticks) expect(label).toMatch(/^([01]\d|2[0-3]):[0-5]\d(\n\d{4}-\d\d-\d\d)?$/)
  // Each label a minute within the window (which wraps midnight), in that zone; the first says its
  // day, as does the first past midnight, and no other.
  const minutes = ticks.map((l) => Number(l.slice(0, 2)) * 60 + Number(l.slice(3, 5)))
  for (const m of minutes) expect(m >= fromMinute || m <= toMinute).toBe(true)
  const dated = ticks.flatMap((l, i) => (l.includes("\n") ? [[i, l.split("\n")[1]] as const] : []))
  const midnight = minutes.findIndex((m, i) => i > 0 && m < (minutes[i - 1] ?? 0))
  expect(dated).toEqual([
    [0, fromDay],
    [midnight, toDay],
  ])

  // What the canvas shows is those labels: below the plot, one patch of ink per label, each as wide
  // as its text in uPlot's axis font ("23:55" is narrower than uPlot's own "11:55pm").
  const ink = await chart.evaluate(inkBelowPlot, ticks)
  expect(ink.spans.length).toBe(ticks.length)
  for (const [i, [, width]] of ink.spans.entries())
    expect({ label: ticks[i], width: Math.abs(width - (ink.widths[i] ?? 0)) <= 4 }).toEqual({
      label: ticks[i],
      width: true,
    })

  // The legend under the cursor: the sample's time, as a table's row writes it.
  const over = await chart.locator(".u-over").boundingBox()
  if (!over) throw new Error("the chart has no plotting area")
  await page.mouse.move(over.x + over.width - 2, over.y + over.height / 2)
  const time = page.locator(".u-legend .u-series").first().locator(".u-value")
  const shown = await waitFor(
    "the legend's time under the cursor",
    () => time.textContent(),
    (t) => t !== null && t !== "—" && t !== "--",
  )
  expect(shown).toMatch(/^\d{4}-\d\d-\d\d ([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/)
  expect(shown?.slice(0, 10)).toBe(toDay)
  expect(browser.problems).toEqual([])
})

type Box = { offsetLeft: number; offsetTop: number; offsetHeight: number }
type Canvas = {
  width: number
  height: number
  getContext(kind: "2d"): {
    font: string
    measureText(text: string): { width: number }
    getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray }
  }
}

/**
 * In the page: the columns of the chart's canvas (CSS pixels) with ink below the plotting area, as
 * spans [start, width] (glyphs less than 5 px apart are one span), and the width each label's widest
 * line takes in uPlot's default axis font.
 */
function inkBelowPlot(box: unknown, labels: string[]) {
  const root = box as { querySelector(s: string): unknown }
  const canvas = root.querySelector("canvas") as Canvas
  const over = root.querySelector(".u-over") as Box
  const ratio = (globalThis as unknown as { devicePixelRatio: number }).devicePixelRatio
  const ctx = canvas.getContext("2d")
  // Past the ticks (10 px below the plot) to the canvas's foot: only the time axis's labels.
  const top = Math.round((over.offsetTop + over.offsetHeight + 11) * ratio)
  const { data } = ctx.getImageData(0, top, canvas.width, canvas.height - top)
  const rows = canvas.height - top
  const inked: boolean[] = []
  for (let x = 0; x < canvas.width; x++) {
    let any = false
    for (let y = 0; y < rows && !any; y++) any = (data[(y * canvas.width + x) * 4 + 3] ?? 0) > 100
    inked.push(any)
  }
  const spans: [number, number][] = []
  for (let x = 0; x < inked.length; x++) {
    if (!inked[x]) continue
    const last = spans.at(-1)
    if (last && x - (last[0] + last[1]) < 5 * ratio) last[1] = x - last[0] + 1
    else spans.push([x, 1])
  }
  const measure = (globalThis as unknown as { document: { createElement(t: "canvas"): Canvas } }).document
    .createElement("canvas")
    .getContext("2d")
  measure.font =
    '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif, "Apple Color Emoji", "Segoe UI Emoji", "Segoe UI Symbol", "Noto Color Emoji"'
  const widths = labels.map((l) => Math.max(...l.split("\n").map((line) => measure.measureText(line).width)))
  return { spans: spans.map(([x, w]) => [x / ratio, w / ratio] as [number, number]), widths }
}
