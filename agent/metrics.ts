// The agent's own metrics, for a Prometheus on the node or beside it: off unless `--metrics-listen
// HOST:PORT` is given. A handful of series in the Prometheus text format, written by hand (a metrics
// library would weigh more than the rest of the agent), served by a bare Bun.serve at GET /metrics:
// what the node runs against what it should, its phase, whether it needs a reboot, and the drift and
// heals it has seen since it started. It has no credential: bind it to loopback (the default idea) or
// to an address only the scraper reaches; it tells which closures run, nothing more.
import type { AgentPhase, AgentReport, SystemLinks } from "../protocol/agent.ts"
import { AgentPhase as Phases } from "../protocol/agent.ts"
import { VERSION } from "../protocol/version.ts"

export interface AgentState {
  readonly desired: string | null
  readonly phase: AgentPhase
  readonly links: SystemLinks
}

export interface AgentMetrics {
  /** Counts a report as it is spooled (drift, heals). */
  report(r: Pick<AgentReport, "type">): void
  render(state: AgentState): string
}

const labelValue = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

export function createAgentMetrics(nodeId: string, startedAt = Date.now()): AgentMetrics {
  const counts = { drift: 0, healed: 0, failed: 0 }
  return {
    report(r) {
      if (r.type === "drift.detected") counts.drift++
      else if (r.type === "heal.succeeded") counts.healed++
      else if (r.type === "heal.failed") counts.failed++
    },
    render({ desired, phase, links }) {
      const out: string[] = []
      const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
        out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
        for (const [labels, value] of samples) out.push(`${name}${labels} ${value}`)
      }
      const node = `node="${labelValue(nodeId)}"`
      metric("chimera_agent_build_info", "gauge", "Always 1; the labels say which agent this is.", [
        [`{${node},version="${labelValue(VERSION)}",runtime="bun ${labelValue(Bun.version)}"}`, 1],
      ])
      metric("chimera_agent_start_time_seconds", "gauge", "When the agent started, in Unix seconds.", [
        [`{${node}}`, startedAt / 1000],
      ])
      const congruent = desired !== null && links.current === desired && links.profile === desired
      metric("chimera_agent_congruent", "gauge", "1 when the profile and the running system are the desired closure.", [
        [`{${node}}`, congruent ? 1 : 0],
      ])
      const reboot = links.booted !== null && links.current !== null && links.booted !== links.current
      metric("chimera_agent_reboot_required", "gauge", "1 when the booted system differs from the running one.", [
        [`{${node}}`, reboot ? 1 : 0],
      ])
      metric(
        "chimera_agent_phase",
        "gauge",
        "1 for the agent's current phase, 0 for the others.",
        Phases.options.map((p) => [`{${node},phase="${p}"}`, p === phase ? 1 : 0]),
      )
      metric("chimera_agent_drift_detected_total", "counter", "Drift detected since the agent started.", [
        [`{${node}}`, counts.drift],
      ])
      metric("chimera_agent_heals_total", "counter", "Heals since the agent started, by outcome.", [
        [`{${node},outcome="succeeded"}`, counts.healed],
        [`{${node},outcome="failed"}`, counts.failed],
      ])
      return `${out.join("\n")}\n`
    },
  }
}

/** Serves GET /metrics on `listen`; anything else is a 404. */
export function serveAgentMetrics(listen: { host: string; port: number }, metrics: AgentMetrics, state: AgentState) {
  return Bun.serve({
    hostname: listen.host,
    port: listen.port,
    fetch(req) {
      const { pathname } = new URL(req.url)
      if (pathname !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD"))
        return new Response("only GET /metrics here\n", { status: 404 })
      return new Response(metrics.render(state), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      })
    },
  })
}
