#!/usr/bin/env bun
// The heartbeat benchmark's second peer: a heartbeat server written for that alone, in one small
// file, doing the work a heartbeat needs and nothing else, as lean as it can be written on Bun. The
// bare peer (heartbeats.ts) is the HTTP floor; this one is what a heartbeat's own work costs at
// least, so the two ratios say how much of Chimera's cost is the work and how much is the rest.
//
// Per request, as Chimera does it: the route from the raw path; the bearer credential's kind; its
// SHA-256 looked up among the enrolled nodes', and the node it names must be the path's; a rate limit
// of 1,200 a minute per node (a fixed window in typed arrays) and its three X-RateLimit headers; the
// body's Content-Type, its text, JSON.parse and a check of every field of protocol/agent.ts's
// NodeHealth (strict objects, whole non-negative numbers, the ISO time, store paths, the phase); the
// heartbeat held as numbers in the node's slot of a typed array, its strings compared with the node's
// kept ones; every 2 s one SQLite transaction (WAL, a prepared statement) writing each held node's
// last heartbeat and health JSON; a JSON answer with the desired closure and an X-Request-Id.
// Not done here, which Chimera does: request metrics, the health history, the unreachable sweep and
// its events, answer redaction, zod's messages for a bad body (this answers 422 with no detail).
//
// usage: bun scripts/bench/heartbeat-peer.ts PORT NODES.json DB  (NODES.json: [{ id, credential }])
import { Database } from "bun:sqlite"
import { readFileSync } from "node:fs"

const [port, nodesFile, dbPath] = process.argv.slice(2)
if (!port || !nodesFile || !dbPath) {
  process.stderr.write("usage: bun scripts/bench/heartbeat-peer.ts PORT NODES.json DB\n")
  process.exit(2)
}

const LIMIT = 1200
const WINDOW_MS = 60_000
const FLUSH_MS = 2_000
const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]*$/
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
const PHASES = new Set(["no-desired", "congruent", "drifted", "healing", "heal-failed", "missing-closure"])
const AGENT_VERSION = /^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}$/
// The control and format characters protocol/terminal-text.ts refuses in a host name (Unicode's Cc, Cf, Zl and Zp)
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u
const ROUTE = /^\/api\/agent\/([A-Za-z0-9._-]+)\/heartbeat$/

const sha256 = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex")

interface Kept {
  id: string
  slot: number
  desired: string | null
  current: string | null
  phase: string
}

const db = new Database(dbPath, { create: true })
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
db.exec(
  "CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, credential_hash TEXT NOT NULL UNIQUE, last_heartbeat_ms INTEGER, current TEXT, phase TEXT, health TEXT)",
)
const enrolled = JSON.parse(readFileSync(nodesFile, "utf8")) as { id: string; credential: string }[]
const byHash = new Map<string, Kept>()
const bySlot: Kept[] = []
const insert = db.prepare("INSERT OR REPLACE INTO nodes (id, credential_hash) VALUES (?, ?)")
db.transaction(() => {
  for (const { id, credential } of enrolled) {
    const kept: Kept = { id, slot: bySlot.length, desired: null, current: null, phase: "" }
    const hash = sha256(credential)
    insert.run(id, hash)
    byHash.set(hash, kept)
    bySlot.push(kept)
  }
})()

// Per node: the rate limit's window, and the held heartbeat's figures (at, uptime, load ×3, memory ×2,
// disk ×2, interval), with a list of the slots held since the last write.
const windowStart = new Float64Array(bySlot.length)
const used = new Uint32Array(bySlot.length)
const FIGURES = 10
const figures = new Float64Array(bySlot.length * FIGURES)
const diskPath: string[] = new Array(bySlot.length).fill("/")
const held = new Uint8Array(bySlot.length)
let heldSlots: number[] = []

const write = db.prepare("UPDATE nodes SET last_heartbeat_ms = ?, current = ?, phase = ?, health = ? WHERE id = ?")
const writeHeld = db.transaction((slots: number[]) => {
  for (const slot of slots) {
    const k = bySlot[slot] as Kept
    const f = figures.subarray(slot * FIGURES, slot * FIGURES + FIGURES)
    const health = `{"uptimeSeconds":${f[1]},"load":[${f[2]},${f[3]},${f[4]}],"memory":{"totalBytes":${f[5]},"availableBytes":${f[6]}},"disk":{"path":${JSON.stringify(diskPath[slot])},"totalBytes":${f[7]},"freeBytes":${f[8]}},"heartbeatIntervalSeconds":${f[9]}}`
    write.run(f[0] as number, k.current, k.phase, health, k.id)
    held[slot] = 0
  }
})
setInterval(() => {
  const slots = heldSlots
  heldSlots = []
  if (slots.length) writeHeld(slots)
}, FLUSH_MS)

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x)
const whole = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0
const nonNegative = (x: unknown) => typeof x === "number" && Number.isFinite(x) && x >= 0
const storePath = (x: unknown) => typeof x === "string" && x.length <= 300 && STORE_PATH.test(x)
const link = (x: unknown) => x === null || storePath(x)
const onlyKeys = (o: Record<string, unknown>, n: number) => Object.keys(o).length === n

/** protocol/agent.ts's NodeHealth, field by field; the caller has checked `nodeId`. */
function validHealth(b: unknown): boolean {
  if (!isObject(b) || !onlyKeys(b, 12)) return false
  const { memory, disk, system, load } = b
  return (
    typeof b.agentVersion === "string" &&
    AGENT_VERSION.test(b.agentVersion) &&
    typeof b.hostname === "string" &&
    b.hostname.length <= 255 &&
    !CONTROL.test(b.hostname) &&
    typeof b.at === "string" &&
    ISO_TIME.test(b.at) &&
    nonNegative(b.uptimeSeconds) &&
    Array.isArray(load) &&
    load.length === 3 &&
    load.every(nonNegative) &&
    isObject(memory) &&
    onlyKeys(memory, 2) &&
    whole(memory.totalBytes) &&
    whole(memory.availableBytes) &&
    isObject(disk) &&
    onlyKeys(disk, 3) &&
    typeof disk.path === "string" &&
    disk.path.length <= 4096 &&
    whole(disk.totalBytes) &&
    whole(disk.freeBytes) &&
    isObject(system) &&
    onlyKeys(system, 3) &&
    link(system.profile) &&
    link(system.current) &&
    link(system.booted) &&
    (b.desired === null || storePath(b.desired)) &&
    typeof b.phase === "string" &&
    PHASES.has(b.phase) &&
    typeof b.heartbeatIntervalSeconds === "number" &&
    b.heartbeatIntervalSeconds >= 0.5 &&
    b.heartbeatIntervalSeconds <= 86_400
  )
}

const refuse = (status: number, error: string) => Response.json({ error }, { status })

Bun.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  idleTimeout: 60,
  async fetch(req) {
    const url = req.url
    const route = ROUTE.exec(url.slice(url.indexOf("/", url.indexOf("//") + 2)))
    if (!route || req.method !== "POST") return refuse(404, "not found")
    const auth = req.headers.get("authorization")
    if (!auth?.startsWith("Bearer chm_node_")) return refuse(401, "a node credential is required")
    const kept = byHash.get(sha256(auth.slice(7)))
    if (!kept) return refuse(401, "unknown credential")
    if (kept.id !== route[1]) return refuse(403, "a node acts only as itself")
    const slot = kept.slot
    const now = Date.now()
    if (now - (windowStart[slot] as number) >= WINDOW_MS) {
      windowStart[slot] = now
      used[slot] = 0
    }
    const count = (used[slot] as number) + 1
    used[slot] = count
    const limitHeaders = {
      "x-ratelimit-limit": String(LIMIT),
      "x-ratelimit-remaining": String(Math.max(0, LIMIT - count)),
      "x-ratelimit-reset": String(Math.ceil(((windowStart[slot] as number) + WINDOW_MS) / 1000)),
    }
    if (count > LIMIT) return Response.json({ error: "rate limited" }, { status: 429, headers: limitHeaders })
    if (!req.headers.get("content-type")?.startsWith("application/json")) return refuse(415, "a JSON body is required")
    let body: Record<string, unknown>
    try {
      body = JSON.parse(await req.text())
    } catch {
      return refuse(400, "Malformed JSON in request body")
    }
    if (!isObject(body) || body.nodeId !== kept.id || !validHealth(body)) return refuse(422, "not a heartbeat")
    const system = body.system as Record<string, string | null>
    if (system.current !== kept.current) kept.current = system.current as string | null
    if (body.phase !== kept.phase) kept.phase = body.phase as string
    const f = slot * FIGURES
    const load = body.load as number[]
    const memory = body.memory as Record<string, number>
    const disk = body.disk as Record<string, number | string>
    figures[f] = now
    figures[f + 1] = body.uptimeSeconds as number
    figures[f + 2] = load[0] as number
    figures[f + 3] = load[1] as number
    figures[f + 4] = load[2] as number
    figures[f + 5] = memory.totalBytes as number
    figures[f + 6] = memory.availableBytes as number
    figures[f + 7] = disk.totalBytes as number
    figures[f + 8] = disk.freeBytes as number
    figures[f + 9] = body.heartbeatIntervalSeconds as number
    if (disk.path !== diskPath[slot]) diskPath[slot] = disk.path as string
    if (!held[slot]) {
      held[slot] = 1
      heldSlots.push(slot)
    }
    return new Response(`{"desired":${JSON.stringify(kept.desired)}}`, {
      headers: { "content-type": "application/json", "x-request-id": crypto.randomUUID(), ...limitHeaders },
    })
  },
})
