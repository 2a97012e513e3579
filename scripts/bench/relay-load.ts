#!/usr/bin/env bun
// The relay benchmark's simulated agents, a process of its own (scripts/bench/relay.ts pins it to its
// own core). Each of N enrolled nodes sends one heartbeat (so the control plane counts it online),
// then holds the real long poll, GET /api/agent/:id/commands?wait=25, with its own credential, and
// acks every `run` command at once with a canned success, WITHOUT running a process: what is measured
// is the relay's overhead (queueing, waking, delivering, acknowledging), not a shell's start-up.
// Orders come as lines on stdin; answers are JSON lines on stdout:
//   health N   N parallel GET /api/health from here (a trivial round-trip baseline) -> {"ms":…}
//   stats      -> {"acked":…,"errors":…,"polling":…}
//
// usage: bun scripts/bench/relay-load.ts CONFIG.json   (prints "ready" once every node polls)
import { readFile } from "node:fs/promises"
import { heartbeatBody } from "../../tests/support/auth.ts"

export interface RelayLoadConfig {
  url: string
  nodes: { id: string; credential: string }[]
}

const HEALTH_EVERY = 600

const cfg = JSON.parse(await readFile(process.argv[2] ?? "", "utf8")) as RelayLoadConfig
let acked = 0
let errors = 0
let polling = 0

const heartbeat = (id: string) => ({
  ...heartbeatBody(id),
  agentVersion: "bench",
  desired: null,
  phase: "no-desired",
  // Long enough that no node goes unreachable during the run without a heartbeat loop here.
  heartbeatIntervalSeconds: HEALTH_EVERY,
})

const headers = (credential: string) => ({
  authorization: `Bearer ${credential}`,
  "content-type": "application/json",
})

async function agent(node: RelayLoadConfig["nodes"][number], ready: () => void) {
  const base = `${cfg.url}/api/agent/${node.id}`
  const hb = await fetch(`${base}/heartbeat`, {
    method: "POST",
    headers: headers(node.credential),
    body: JSON.stringify(heartbeat(node.id)),
  })
  if (!hb.ok) throw new Error(`heartbeat ${node.id}: ${hb.status} ${await hb.text()}`)
  await hb.arrayBuffer()
  let first = true
  for (;;) {
    try {
      const poll = fetch(`${base}/commands?wait=25`, { headers: headers(node.credential) })
      if (first) {
        first = false
        polling++
        ready()
      }
      const res = await poll
      if (!res.ok) {
        errors++
        await res.arrayBuffer()
        await Bun.sleep(500)
        continue
      }
      const { commands } = (await res.json()) as { commands: { id: string; kind: string }[] }
      await Promise.all(
        commands.map(async (c) => {
          const ack = await fetch(`${base}/commands/${c.id}/ack`, {
            method: "POST",
            headers: headers(node.credential),
            body: JSON.stringify(
              c.kind === "run"
                ? { success: true, output: "ok\n", exitCode: 0, stderr: "" }
                : { success: false, output: "not simulated" },
            ),
          })
          await ack.arrayBuffer()
          if (ack.ok) acked++
          else errors++
        }),
      )
    } catch {
      errors++
      await Bun.sleep(500)
    }
  }
}

let started = 0
await new Promise<void>((resolve) => {
  for (const node of cfg.nodes)
    void agent(node, () => {
      if (++started === cfg.nodes.length) resolve()
    }).catch((error) => {
      process.stderr.write(`${(error as Error).message}\n`)
      process.exit(1)
    })
})
// The polls are sent; give the control plane a moment to hold every one of them.
await Bun.sleep(1000)
process.stdout.write("ready\n")

for await (const line of console) {
  const [order, arg] = line.trim().split(/\s+/)
  if (order === "health") {
    const n = Number(arg)
    const t0 = performance.now()
    const statuses = await Promise.all(
      Array.from({ length: n }, () =>
        fetch(`${cfg.url}/api/health`).then(
          async (r) => {
            await r.arrayBuffer()
            return r.status
          },
          () => 0,
        ),
      ),
    )
    const ms = performance.now() - t0
    process.stdout.write(`${JSON.stringify({ ms, ok: statuses.filter((s) => s === 200).length })}\n`)
  } else if (order === "stats") {
    process.stdout.write(`${JSON.stringify({ acked, errors, polling })}\n`)
  }
}
