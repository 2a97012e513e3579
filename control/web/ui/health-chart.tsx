// A node's load and its memory and disk use over the last minutes (GET /api/nodes/:id/health-history,
// one sample per 5 s at most), drawn by uPlot: load on the left axis, memory and disk in percent on
// the right. Heartbeats are not events, so the chart reads again every 10 s while it is shown. Times
// read as in the tables (format.ts): local, 24-hour, on the axis and in the legend under the cursor.
import { useEffect, useRef, useState } from "preact/hooks"
import uPlot from "uplot"
import "uplot/dist/uPlot.min.css"
import { seg } from "../client/api.ts"
import { axisTimes, when } from "../client/format.ts"
import type { HealthSample } from "../client/types.ts"
import type { Ctx } from "./app.tsx"

const pct = (used: number, total: number) => (total > 0 ? (100 * used) / total : null)

/** The time axis shows at least the 15 minutes the history keeps, up to the newest sample. It is read
 * from the samples: for a node's first one (a span of zero) uPlot hands this a span of 1,000 days. */
const WINDOW_S = 15 * 60
const timeRange = (u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax => {
  const times = u.data[0] ?? []
  const end = times.at(-1) ?? max ?? Date.now() / 1000
  return [Math.min(times[0] ?? min ?? end, end - WINDOW_S), end]
}
/** Load from 0, to at least 1: a load of 0 throughout drew an axis to 100. */
const loadRange = (_u: uPlot, _min: number | null, max: number | null): uPlot.Range.MinMax => [0, Math.max(1, max ?? 0)]

function css(name: string, fallback: string) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback
}

/** The times the axis spans, on the chart's element (its ticks are drawn, not text). */
function shownWindow(el: HTMLElement, plot: uPlot) {
  const { min, max } = plot.scales.x ?? {}
  if (min === undefined || max === undefined) return
  el.dataset.from = new Date(min * 1000).toISOString()
  el.dataset.to = new Date(max * 1000).toISOString()
}

/**
 * The time axis's labels as uPlot last drew them, on the chart's element: the text of a canvas can be
 * read nowhere else. `_values` is uPlot's own record of them (what its axis drawing writes out).
 */
function drawnTimes(el: HTMLElement, plot: uPlot) {
  const drawn = (plot.axes[0] as { _values?: unknown } | undefined)?._values
  if (Array.isArray(drawn)) el.dataset.ticks = JSON.stringify(drawn)
}

/** A legend's figure: "—" where the cursor is on no sample. */
const figure =
  (digits: number, unit = "") =>
  (_u: uPlot, v: number | null) =>
    v === null || v === undefined ? "—" : `${v.toFixed(digits)}${unit}`

export function HealthChart({ ctx, id }: { ctx: Ctx; id: string }) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const resized = useRef<ResizeObserver | null>(null)
  const [samples, setSamples] = useState<HealthSample[] | null>(null)

  useEffect(() => {
    let live = true
    const read = () =>
      ctx.api.get<{ samples: HealthSample[] }>(`/api/nodes/${seg(id)}/health-history`).then(
        (r) => live && setSamples(r.samples),
        () => {},
      )
    void read()
    const t = setInterval(read, 10_000)
    return () => {
      live = false
      clearInterval(t)
    }
  }, [ctx, id])

  useEffect(() => {
    const el = box.current
    if (!el || !samples || samples.length === 0) return
    const data: uPlot.AlignedData = [
      samples.map((s) => Date.parse(s.at) / 1000),
      samples.map((s) => s.load1),
      samples.map((s) => pct(s.memoryUsedBytes, s.memoryTotalBytes)),
      samples.map((s) => pct(s.diskUsedBytes, s.diskTotalBytes)),
    ]
    if (plot.current) {
      plot.current.setData(data)
      return
    }
    const axis = css("--muted", "#666")
    const grid = css("--line", "#ddd")
    const width = () => Math.max(240, el.clientWidth)
    plot.current = new uPlot(
      {
        width: width(),
        height: 180,
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true, range: timeRange }, y: { range: loadRange }, pct: { range: [0, 100] } },
        hooks: {
          setScale: [(u, key) => key === "x" && shownWindow(el, u)],
          draw: [(u) => drawnTimes(el, u)],
        },
        axes: [
          { stroke: axis, grid: { stroke: grid }, values: (_u, ticks, _i, _space, step) => axisTimes(ticks, step) },
          { stroke: axis, grid: { stroke: grid }, label: "load" },
          { side: 1, scale: "pct", stroke: axis, grid: { show: false }, label: "%" },
        ],
        series: [
          {
            label: "time",
            value: (_u, v) => (v === null || v === undefined ? "—" : when(new Date(v * 1000).toISOString())),
          },
          { label: "load 1m", stroke: css("--c-load", "#2563eb"), width: 2, value: figure(2) },
          { label: "memory", scale: "pct", stroke: css("--c-mem", "#9333ea"), width: 1.5, value: figure(1, " %") },
          { label: "disk", scale: "pct", stroke: css("--c-disk", "#d97706"), width: 1.5, value: figure(1, " %") },
        ],
      },
      data,
      el,
    )
    // Kept as long as the plot: a cleanup of this effect would run at the next read's samples (10 s
    // on), and the chart would stop following its box's width.
    resized.current = new ResizeObserver(() => plot.current?.setSize({ width: width(), height: 180 }))
    resized.current.observe(el)
  }, [samples])

  useEffect(
    () => () => {
      resized.current?.disconnect()
      plot.current?.destroy()
      plot.current = null
    },
    [],
  )

  return (
    <figure class="chart" aria-label={`Load, memory and disk of ${id} over the last minutes`}>
      {samples !== null && samples.length === 0 && <p class="empty">No samples yet (one every 5 s).</p>}
      <div ref={box} data-testid="health-chart" />
    </figure>
  )
}
