import { expect, test } from "bun:test"
import { replaceSections } from "./benchmarks-file.ts"

const OLD = `# Benchmarks

Measured 2026-11-22 on 2 cores (\`bun scripts/bench.ts\`).

### Drift detected and healed (target: p50 < 300 ms)

old drift table

### Heartbeat ingest (target: 10,000/s)

old heartbeat table

### Heartbeat ingest: where a heartbeat's CPU goes

written by hand, kept

### Replicas on PostgreSQL

measured by its own run, kept
`

test("a run's sections replace theirs by title and leave every other section as it was", () => {
  const produced = "### Heartbeat ingest (target: 12,000/s)\n\nnew heartbeat table\n"
  const updated = replaceSections(OLD, produced)
  expect(updated).toContain("new heartbeat table")
  expect(updated).not.toContain("old heartbeat table")
  // A target changed in the heading still finds its section; a longer title that begins alike does not.
  expect(updated).toContain("### Heartbeat ingest (target: 12,000/s)")
  expect(updated).toContain("written by hand, kept")
  expect(updated).toContain("measured by its own run, kept")
  expect(updated).toContain("old drift table")
  expect(updated).toContain("Measured 2026-11-22")
  expect(updated.indexOf("new heartbeat table")).toBeLessThan(updated.indexOf("written by hand, kept"))
})

test("a full run's lines above its first section replace the old ones under the title; a new section goes last", () => {
  const produced =
    "Measured 2026-12-06 on 2 cores.\n\n### Drift detected and healed (target: p50 < 300 ms)\n\nnew drift\n\n### SSH fan-out\n\nnew ssh\n"
  const updated = replaceSections(OLD, produced)
  expect(updated.startsWith("# Benchmarks\n\nMeasured 2026-12-06 on 2 cores.\n\n### Drift detected")).toBe(true)
  expect(updated).not.toContain("2026-11-22")
  expect(updated).not.toContain("old drift table")
  expect(updated.trimEnd().endsWith("### SSH fan-out\n\nnew ssh")).toBe(true)
  expect(updated).toContain("measured by its own run, kept")
})

test("replacing a document's sections with themselves changes nothing", () => {
  expect(replaceSections(OLD, OLD.slice(OLD.indexOf("### ")))).toBe(OLD)
})
