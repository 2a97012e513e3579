// Drains the incident outbox: leases due deliveries, hands each to its channel or ticket system, and
// records what came of it. At most `concurrency` sends are in flight, each bounded by a timeout, and
// nothing here is awaited by a request, so a slow or dead Slack cannot hold up heartbeats. A failure
// worth retrying comes back after an exponential backoff, or after the service's Retry-After if that
// is longer; one that cannot succeed (a refused credential) or that kept failing for `maxAttempts`
// tries is marked failed and kept with its last error, shown by the API, never dropped in silence.
// A restart resumes from the store: what was acknowledged is never sent again.
import { failureLog } from "../../protocol/failure-log.ts"
import { createLogger } from "../../protocol/log.ts"
import type { OutboxItem, OutboxPort } from "./incident-ports.ts"
import type { ConfiguredChannels, DeliveryResult } from "./notifications.ts"
import type { Clock } from "./ports.ts"

const log = createLogger("delivery")

export interface DeliveryWorkerOptions {
  concurrency: number
  /** How long a leased delivery is this worker's; a send is cut off well before. */
  leaseMs: number
  sendTimeoutMs: number
  maxAttempts: number
  baseBackoffMs: number
  maxBackoffMs: number
  /** The longest wait between looks at the outbox when nothing woke the worker. */
  idleMs: number
  /** Past this event-loop lag (ms) deliveries go one at a time, leaving the loop to heartbeats. */
  lagLimitMs: number
}

export const DEFAULT_DELIVERY: DeliveryWorkerOptions = {
  concurrency: 8,
  leaseMs: 3 * 60_000,
  sendTimeoutMs: 30_000,
  maxAttempts: 25,
  baseBackoffMs: 1000,
  maxBackoffMs: 10 * 60_000,
  idleMs: 1000,
  lagLimitMs: 100,
}

export interface DeliveryWorkerDeps {
  outbox: OutboxPort
  channels: ConfiguredChannels
  clock: Clock
  options?: Partial<DeliveryWorkerOptions>
  /** Told of every acknowledged delivery (a ticket's id becomes known with its create). */
  onDelivered?: (item: OutboxItem, result: { externalId?: string; label?: string }) => void
}

/** The backoff before attempt `attempts + 1`: doubling from the base, capped, with a little jitter. */
export function backoffMs(attempts: number, o: Pick<DeliveryWorkerOptions, "baseBackoffMs" | "maxBackoffMs">) {
  const plain = Math.min(o.maxBackoffMs, o.baseBackoffMs * 2 ** Math.max(0, attempts - 1))
  return Math.round(plain * (0.9 + Math.random() * 0.2))
}

export function createDeliveryWorker({ outbox, channels, clock, options, onDelivered }: DeliveryWorkerDeps) {
  const o = { ...DEFAULT_DELIVERY, ...options }
  const inFlight = new Set<Promise<void>>()
  let stopped = true
  let timer: ReturnType<typeof setTimeout> | undefined

  const send = (item: OutboxItem): Promise<DeliveryResult> => {
    const channel = channels.channels.find((c) => c.name === item.channel)
    if (channel) return channel.send(item.notice)
    const tickets = channels.tickets
    if (tickets && tickets.name === item.channel) {
      if (item.step === "opened") return tickets.create(item.notice)
      // The outbox hands out later steps only once the create gave the incident its ticket.
      const id = item.ticketId ?? ""
      return item.step === "resolved" ? tickets.resolve(id, item.notice) : tickets.update(id, item.notice)
    }
    return Promise.resolve({
      ok: false,
      retryable: false,
      error: `${item.channel}: this channel is no longer configured`,
    })
  }

  const withTimeout = async (item: OutboxItem): Promise<DeliveryResult> => {
    let cut: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<DeliveryResult>((resolve) => {
      cut = setTimeout(
        () => resolve({ ok: false, retryable: true, error: `${item.channel}: no answer within ${o.sendTimeoutMs} ms` }),
        o.sendTimeoutMs,
      )
    })
    try {
      return await Promise.race([send(item), timeout])
    } catch (error) {
      // Channels answer failures as values; one that throws is a bug, retried rather than lost.
      return { ok: false, retryable: true, error: `${item.channel}: ${(error as Error).message}` }
    } finally {
      clearTimeout(cut)
    }
  }

  const deliver = async (item: OutboxItem) => {
    const result = await withTimeout(item)
    const at = clock.now()
    const attempts = item.attempts + 1
    if (result.ok) {
      await outbox.delivered(item, at.toISOString(), result)
      log.info("delivered", { incident: item.incidentId, step: item.step, channel: item.channel, attempts })
      onDelivered?.(item, result)
      return
    }
    if (!result.retryable || attempts >= o.maxAttempts) {
      await outbox.failed(item.id, attempts, result.error)
      log.error("delivery failed for good", { incident: item.incidentId, step: item.step, error: result.error })
      return
    }
    const wait = Math.max(backoffMs(attempts, o), result.retryAfterMs ?? 0)
    await outbox.retryLater(item.id, attempts, at.getTime() + wait, result.error)
    log.warn("delivery will be retried", { incident: item.incidentId, step: item.step, error: result.error, wait })
  }

  // Deliveries are leased a batch at a time and sent from a local queue: one outbox query per batch,
  // not one per delivery, so a burst of a thousand incidents costs the store (and the heartbeats
  // that share it) a few dozen queries. `held` keeps a row this worker still holds from being
  // handed to it again should its lease run out while it waits in the queue.
  const queue: OutboxItem[] = []
  /** Each held row's lease end (ms): one whose lease cannot outlast a send is let go, not sent. */
  const held = new Map<number, number>()
  let refilling = false
  // The outbox is read every idle tick (a second): a database away for a minute is said once, again
  // each minute, and when it answers again, not at every look.
  const reading = failureLog(log, "reading the outbox failed")

  const launch = (item: OutboxItem) => {
    const running: Promise<void> = deliver(item)
      .catch((error) => log.error("recording a delivery failed", { incident: item.incidentId, error }))
      .finally(() => {
        inFlight.delete(running)
        held.delete(item.id)
        pump()
      })
    inFlight.add(running)
  }

  const idle = async () => {
    clearTimeout(timer)
    if (stopped) return
    const due = await outbox.nextDueMs().catch(() => null)
    const wait = due === null ? o.idleMs : Math.min(o.idleMs, Math.max(250, due - clock.now().getTime()))
    timer = setTimeout(pump, wait)
  }

  const refill = async () => {
    refilling = true
    let claimed = 0
    try {
      const now = clock.now().getTime()
      const items = await outbox.claimDue(now, o.leaseMs, o.concurrency * 4)
      reading.worked()
      for (const item of items) {
        if (held.has(item.id)) continue
        held.set(item.id, now + o.leaseMs)
        queue.push(item)
        claimed++
      }
    } catch (error) {
      reading.failed(error)
    } finally {
      refilling = false
    }
    if (claimed > 0) pump()
    else if (inFlight.size === 0) await idle()
  }

  // How late a 100 ms timer fires is how long everything else waits for the event loop. A control
  // plane short of CPU (a burst of incidents on a busy core) sends one delivery at a time until the
  // heartbeats it also answers are served on time again: notifications come later, nodes are not
  // marked unreachable for want of a turn.
  let lagMs = 0
  let lagProbe: ReturnType<typeof setInterval> | undefined
  const probeLag = () => {
    let expected = performance.now() + 100
    lagProbe = setInterval(() => {
      const now = performance.now()
      lagMs = Math.max(0, now - expected)
      expected = now + 100
    }, 100)
    lagProbe.unref?.()
  }

  function pump() {
    if (stopped) return
    const limit = lagMs > o.lagLimitMs ? 1 : o.concurrency
    while (inFlight.size < limit && queue.length > 0) {
      const item = queue.shift() as OutboxItem
      // Another worker may take it once the lease runs out; the next refill may bring it back here.
      if ((held.get(item.id) ?? 0) < clock.now().getTime() + o.sendTimeoutMs) held.delete(item.id)
      else launch(item)
    }
    if (queue.length === 0 && !refilling && inFlight.size < limit) void refill()
  }

  // Many incidents opening at once each ask for a look; one look a moment later serves them all.
  let soon: ReturnType<typeof setTimeout> | undefined
  const wake = () => {
    if (soon || stopped) return
    soon = setTimeout(() => {
      soon = undefined
      clearTimeout(timer)
      pump()
    }, 20)
  }

  return {
    /** Starts draining; `releaseLeases` first when no other control plane can hold one. */
    async start(releaseLeases: boolean) {
      if (releaseLeases) await outbox.releaseLeases()
      stopped = false
      probeLag()
      pump()
    },
    /** Something was enqueued: look now rather than at the next idle tick. */
    wake,
    /** Stops leasing and waits for the sends in flight to be recorded. */
    async stop() {
      stopped = true
      clearTimeout(timer)
      clearTimeout(soon)
      clearInterval(lagProbe)
      await Promise.allSettled([...inFlight])
    },
  }
}

export type DeliveryWorker = ReturnType<typeof createDeliveryWorker>
