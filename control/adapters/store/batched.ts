// Group commit (and group read) for the hot paths of 20,000 agents: calls that arrive while a batch
// is being written, or in the same turn of the event loop, go to the database together in the next
// batch, one statement for all of them. A statement's fixed cost (Bun.SQL prepares every query; SQLite
// appends one WAL commit) is then paid per batch, not per call, and under load batches grow by
// themselves to what arrived while the previous one ran. Nothing waits on a timer: a 1–2 ms window
// was measured (scripts/bench.ts --only heartbeats) to save CPU at half load but to lose throughput
// at the 10,000/s target. Each caller's promise settles only when its batch has (committed, for
// writes), so what a caller acknowledges is as durable as if it had gone alone.
export function batched<I, O>(run: (inputs: I[]) => Promise<O[]>, maxBatch = 500): (input: I) => Promise<O> {
  type Pending = { input: I; resolve: (o: O) => void; reject: (e: unknown) => void }
  let queue: Pending[] = []
  let running = false

  const drain = async () => {
    running = true
    try {
      while (queue.length > 0) {
        const batch = queue.slice(0, maxBatch)
        queue = queue.slice(batch.length)
        try {
          const out = await run(batch.map((p) => p.input))
          for (const [i, p] of batch.entries()) p.resolve(out[i] as O)
        } catch (error) {
          for (const p of batch) p.reject(error)
        }
      }
    } finally {
      running = false
    }
  }

  return (input) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ input, resolve, reject })
      if (!running && queue.length === 1) setImmediate(drain)
    })
}
