// Checkpoints an SQLite file's WAL from a thread of its own. A commit that finds the WAL past
// `wal_autocheckpoint` pages checkpoints in the committing thread: it copies every page the WAL holds
// into the file and syncs both, 100-150 ms with 20,000 nodes' rows on this VM, and the event loop
// answers nothing meanwhile (a p99 of 136-364 ms at 7,000 heartbeats/s, from one or two of them in
// a run). Here a worker thread with its own connection runs a PASSIVE checkpoint every `everyMs`
// instead: it takes no lock a writer or reader waits for, so the event loop never stops for it. The
// handles' own autocheckpoint stays set, far above what the worker leaves in the WAL, as the safety
// net should the worker stop or fall behind (a fleet far beyond the 20,000 nodes Chimera targets).
//
// The worker is a Blob URL, not a file: `bun build --compile` bundles no worker file it is not told of,
// and the compiled CLI runs `chimera web` too.
import { createLogger } from "../../../protocol/log.ts"

const log = createLogger("store")

/**
 * How often the control plane's WAL is checkpointed here. A checkpoint copies each page once however
 * often the WAL holds it, and held heartbeats (sqlite-hot-path.ts) rewrite most of 20,000 nodes' pages
 * every HOLD_MS: every 5 s the WAL spans a couple of rounds of them (about 8,000 pages).
 */
export const CHECKPOINT_EVERY_MS = 5000
/**
 * WAL pages after which a commit checkpoints in its own thread (SQLite's default is 1,000): with the
 * checkpointer running, only a safety net should it stop or fall behind.
 */
export const CHECKPOINT_PAGES = 40_000
/** What the hot path's commits checkpoint at when the checkpointer cannot run (as before it was). */
export const CHECKPOINT_PAGES_ALONE = 10_000

/** The worker's whole program: open the file, checkpoint on a timer, close when told. */
const WORKER = `
import { Database } from "bun:sqlite"
let db = null
let timer = null
self.onmessage = ({ data }) => {
  if (data.stop) {
    clearInterval(timer)
    try { db?.close(false) } catch {}
    process.exit(0)
  }
  try {
    db = new Database(data.file, { readwrite: true, create: false })
    db.run("PRAGMA busy_timeout = 5000")
  } catch (error) {
    postMessage({ error: "cannot open the database: " + (error?.message ?? error) })
    return
  }
  timer = setInterval(() => {
    try {
      db.run("PRAGMA wal_checkpoint(PASSIVE)")
    } catch (error) {
      // Once is enough: the owner's commits checkpoint again (a file removed under it fails every time).
      clearInterval(timer)
      try { db.close(false) } catch {}
      postMessage({ error: "checkpoint failed: " + (error?.message ?? error) })
    }
  }, data.everyMs)
}
`

let workerUrl: string | undefined

export interface Checkpointer {
  /** Stops the worker (it closes its connection first); safe to call more than once. */
  stop(): void
  /** Settles when the worker's thread has ended. */
  readonly ended: Promise<void>
}

/**
 * Starts checkpointing `file` every `everyMs` from a thread of its own. `failed` is called (once, and
 * never after stop) when the worker cannot do it: the caller then has its commits checkpoint again.
 */
export function startCheckpointer(file: string, everyMs: number, failed: () => void = () => {}): Checkpointer {
  // One URL for the process, never revoked: a worker may load it after `new Worker` returns.
  workerUrl ??= URL.createObjectURL(new Blob([WORKER], { type: "application/javascript" }))
  const worker = new Worker(workerUrl)
  // A control plane, a test or a CLI command ends when its own work does, not when this thread would.
  worker.unref()
  let stopped = false
  let failing = false
  // What it says once stopped (a store closed, its directory removed, before the worker opened it) is moot.
  const fail = (msg: string, error: string) => {
    if (stopped) return
    log.warn(msg, { file, error })
    if (failing) return
    failing = true
    failed()
  }
  worker.onmessage = ({ data }: MessageEvent<{ error?: string }>) => {
    if (data.error) fail("the WAL checkpointer failed; commits checkpoint themselves", data.error)
  }
  worker.onerror = (event) => fail("the WAL checkpointer stopped; commits checkpoint themselves", event.message)
  const ended = new Promise<void>((resolve) => worker.addEventListener("close", () => resolve()))
  worker.postMessage({ file, everyMs })
  return {
    ended,
    stop() {
      if (stopped) return
      stopped = true
      worker.postMessage({ stop: true })
    },
  }
}
