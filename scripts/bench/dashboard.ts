// The web dashboard with 1,000 nodes (targets: first render under 500 ms, an event on screen under
// 200 ms after it happens). `chimera web` runs as a child process pinned to core 0 with 1,000 nodes
// enrolled through the real API, each with a desired closure and a heartbeat (a few drifted, a few
// failing to heal, so the list has trouble to sort first); no real agents. Real Chromium (headless,
// fresh profile) runs on core 1 with this script.
//
//   first render  From the click on "Sign in" (a pasted API token) to the overview showing all 1,000
//                 nodes counted and its first rows drawn, timed inside the page (a MutationObserver
//                 installed before the page's own script). Each round is a new tab, so the script and
//                 stylesheet are fetched again (from the browser's cache after the first).
//   event         From just before an agent's drift report is POSTed to the moment its row appears in
//                 the overview's event feed, and to the moment the node's row in the list says
//                 `drifted`, both on the wall clock this machine shares with the browser.
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { launchBrowser } from "../../tests/support/browser.ts"
import { freePort } from "../../tests/support/control-plane.ts"
import { signInWithToken } from "../../tests/support/dashboard.ts"
import { CORES, enrol, log, median, pinned, stopProc, waitUp } from "./common.ts"

const ROOT = join(import.meta.dir, "../..")
export const DASHBOARD_HEADING = "### Web dashboard with 1,000 nodes"
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/wi6rh8nbq7wb5jnhzccqkkk341v4h5k2-chimera-test-system-2"

export interface DashboardOptions {
  nodes: number
  renders: number
  events: number
}

export interface DashboardResults {
  opts: DashboardOptions
  firstRender: number[]
  toFeed: number[]
  toRow: number[]
  pageLoad: number[]
  /** The machine's 1-minute load average when the run started and when it ended. */
  load: [number, number]
}

type Probe = { clicked?: number; rendered?: number; feed: Record<string, number>; drifted: Record<string, number> }

// Runs in the page before its own script: timestamps what the benchmark waits for. A string, since
// this program has no DOM library to type it with.
const PROBE = `(() => {
  const probe = { feed: {}, drifted: {} }
  globalThis.__probe = probe
  addEventListener("submit", () => { probe.clicked = performance.timeOrigin + performance.now() }, true)
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now()
    const all = document.querySelector('[data-testid="count-all"]')
    if (probe.rendered === undefined && all && all.textContent === String(globalThis.__expect) && document.querySelector("table.grid td.name a"))
      probe.rendered = now
    for (const tr of document.querySelectorAll('[data-testid="latest-events"] tr')) {
      const node = tr.querySelector("td.name a")?.textContent
      if (node && probe.feed[node] === undefined && tr.textContent.includes("drift.detected")) probe.feed[node] = now
    }
    for (const a of document.querySelectorAll("table.grid td.name a")) {
      const id = a.textContent
      if (id && probe.drifted[id] === undefined && a.closest("tr")?.querySelector(".badge")?.textContent === "drifted")
        probe.drifted[id] = now
    }
  }).observe(document, { subtree: true, childList: true, characterData: true })
})()`

const probeOf = (page: Page) => page.evaluate("globalThis.__probe") as Promise<Probe>

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = performance.now() + ms
  for (;;) {
    const v = await read()
    if (ok(v)) return v
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

export async function dashboardBench(opts: DashboardOptions): Promise<DashboardResults> {
  const loadAtStart = loadavg()[0] ?? 0
  const dir = await mkdtemp(join(tmpdir(), "chimera-bench-dash-"))
  const port = freePort()
  const url = `http://127.0.0.1:${port}`
  const server = Bun.spawn(
    pinned(CORES.server, [process.execPath, join(ROOT, "control/main.ts"), "web", "--port", String(port)]),
    {
      env: { ...process.env, CHIMERA_DATA_DIR: dir, CHIMERA_CONFIG_FILE: "", CHIMERA_RATE_LIMITS_API: "1000000000" },
      stdout: "ignore",
      stderr: "inherit",
    },
  )
  // Chromium and this script share the other core: only the server is pinned from here.
  const browser = await launchBrowser()
  try {
    await waitUp(url, server, "chimera web")
    const admin = (await readFile(join(dir, "admin.token"), "utf8")).trim()
    const started = performance.now()
    const nodes = await enrol(url, admin, opts.nodes, (i) => `dash-${String(i).padStart(4, "0")}`)
    const send = (path: string, token: string, method: string, body: unknown) =>
      fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then(async (r) => {
        if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`)
      })
    let next = 0
    const seed = async () => {
      for (let i = next++; i < nodes.length; i = next++) {
        const n = nodes[i]
        if (!n) continue
        await send(`/api/nodes/${n.id}/desired`, admin, "PUT", { closure: GEN1 })
        const current = i % 37 === 0 ? GEN2 : GEN1
        await send(`/api/agent/${n.id}/heartbeat`, n.credential, "POST", {
          nodeId: n.id,
          agentVersion: "bench",
          hostname: n.id,
          at: new Date().toISOString(),
          uptimeSeconds: 1000 + i,
          load: [(i % 13) / 10, 0.2, 0.1],
          memory: { totalBytes: 8 * 2 ** 30, availableBytes: (2 + (i % 5)) * 2 ** 30 },
          disk: { path: "/nix/store", totalBytes: 100 * 2 ** 30, freeBytes: (20 + (i % 50)) * 2 ** 30 },
          system: { profile: current, current, booted: GEN1 },
          desired: GEN1,
          phase: i % 101 === 0 ? "heal-failed" : current === GEN1 ? "congruent" : "drifted",
          // Long enough that none turns unreachable while the benchmark runs.
          heartbeatIntervalSeconds: 3600,
        })
      }
    }
    await Promise.all(Array.from({ length: 16 }, seed))
    log(
      `  ${opts.nodes} nodes enrolled with a heartbeat each in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    )

    const firstRender: number[] = []
    const pageLoad: number[] = []
    // One warm-up round: from source, Bun bundles the page on its first request.
    for (let round = 0; round <= opts.renders; round++) {
      const page = await browser.page()
      await page.addInitScript(`globalThis.__expect = ${opts.nodes}; ${PROBE}`)
      await signInWithToken(page, url, admin)
      const p = await until(
        "the overview with every node",
        () => probeOf(page),
        (v) => v.rendered !== undefined,
      )
      const nav = (await page.evaluate(
        "performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd ?? 0",
      )) as number
      if (round > 0) {
        firstRender.push((p.rendered ?? 0) - (p.clicked ?? 0))
        pageLoad.push(nav)
      }
      if (round < opts.renders) await page.close()
      else {
        // The last tab stays on the overview for the event rounds.
        await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()
        const toFeed: number[] = []
        const toRow: number[] = []
        const healthy = nodes.filter((_, i) => i % 37 !== 0 && i % 101 !== 0)
        for (let e = 0; e < opts.events; e++) {
          const n = healthy[e]
          if (!n) break
          // The list draws only the rows in view: the node is searched for, so its row is one of them.
          await page.getByRole("searchbox").fill(n.id)
          await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: n.id, exact: true }).waitFor()
          const sent = Date.now()
          await send(`/api/agent/${n.id}/reports`, n.credential, "POST", {
            reports: [
              {
                seq: 1,
                at: new Date().toISOString(),
                type: "drift.detected",
                data: {
                  kinds: ["runtime-drift"],
                  desired: GEN1,
                  system: { profile: GEN1, current: GEN2, booted: GEN1 },
                },
              },
            ],
          })
          const seen = await until(
            `${n.id}'s drift on screen`,
            () => probeOf(page),
            (v) => v.feed[n.id] !== undefined && v.drifted[n.id] !== undefined,
          )
          toFeed.push((seen.feed[n.id] ?? 0) - sent)
          toRow.push((seen.drifted[n.id] ?? 0) - sent)
        }
        return { opts, firstRender, toFeed, toRow, pageLoad, load: [loadAtStart, loadavg()[0] ?? 0] }
      }
    }
    throw new Error("no rounds ran")
  } finally {
    await browser.close()
    await stopProc(server)
    await rm(dir, { recursive: true, force: true })
  }
}

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1))
const p = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0

export function dashboardTable(r: DashboardResults, measured: string): string {
  const row = (name: string, xs: number[], target: string) =>
    `| ${name} | ${xs.length} | ${ms(median(xs))} | ${ms(p(xs, 0.95))} | ${ms(Math.max(...xs))} | ${target} |`
  return [
    DASHBOARD_HEADING,
    "",
    `${measured} (\`bun scripts/bench.ts --only dashboard\`). \`chimera web\` (from source, SQLite) pinned to core 0, ${r.opts.nodes.toLocaleString("en")} nodes enrolled through the API with a heartbeat each (1 in 37 drifted, 1 in 101 failing to heal; no real agents); headless Chromium with a fresh profile beside this script on core 1. Times are taken inside the page by a MutationObserver installed before the dashboard's script. The machine's load average was ${r.load[0].toFixed(1)} at the start and ${r.load[1].toFixed(1)} at the end (other work shared its 2 cores), which the tails show.`,
    "",
    "| measure | samples | median ms | p95 ms | max ms | target |",
    "|---|---:|---:|---:|---:|---:|",
    row(
      `first render: "Sign in" clicked → overview with all ${r.opts.nodes.toLocaleString("en")} nodes counted and drawn`,
      r.firstRender,
      "500 ms",
    ),
    row("event on screen: drift report POSTed → its row in the event feed", r.toFeed, "200 ms"),
    row("event on screen: drift report POSTed → the node's row says drifted", r.toRow, "200 ms"),
    row("page load (navigation → DOMContentLoaded, script and stylesheet cached)", r.pageLoad, "–"),
    "",
    "First render includes checking the token (`GET /api/auth/me`), opening the event stream, reading all nodes (`GET /api/nodes`) and drawing the list, which draws only the rows in view. An event reaches the page through the control plane's SSE stream (read with fetch, Authorization header, Last-Event-ID on reconnect).",
  ].join("\n")
}
