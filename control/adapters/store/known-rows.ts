// Each node's row as last read with its credential, by node id and by credential hash, for the SQLite
// hot path (sqlite-hot-path.ts). A random read by key cost 9-13 µs with 20,000 nodes (two B-tree
// descents), most of a heartbeat's store work, and a node's row changes only through this process
// (one control plane to a file: sqlite-owner.ts). The hot path keeps a kept row saying what its row
// says as it writes (a full heartbeat write, written held heartbeats); every write through the other
// handle drops it (`drop`), and a write that must hold from the very next lookup (a revocation, a
// rotation request, a re-enrolment, a new desired closure) stops it standing before it commits
// (`changing`): dropped after the commit, it still answered the requests that ran in between.

export type CredentialRow = Record<string, unknown>

/**
 * How long a node's row, once read, stands for it. Every write of this process that changes what is
 * kept drops or updates it at once, and no other control plane writes the file (sqlite-owner.ts; the
 * CLI goes through the API): the limit only bounds what a hand edit of the file, or a case missed by
 * the hot path, would cost.
 */
export const KNOWN_MS = 300_000

export function knownRows() {
  type Known = { hash: string; row: CredentialRow; readAt: number }
  const byId = new Map<string, Known>()
  const byHash = new Map<string, Known>()
  /** Nodes whose rows a write through the other handle is changing (changing()), with its count. */
  const pending = new Map<string, number>()

  const drop = (id: string) => {
    const k = byId.get(id)
    if (!k) return
    byId.delete(id)
    byHash.delete(k.hash)
  }

  return {
    /** The node's kept row, which the hot path may update as it writes, or undefined. */
    row: (id: string): CredentialRow | undefined => byId.get(id)?.row,
    /** The row of the node whose credential this is, while it stands, or undefined. */
    byCredential(hash: string): CredentialRow | undefined {
      const k = byHash.get(hash)
      return k && performance.now() - k.readAt < KNOWN_MS ? k.row : undefined
    },
    /** Keeps a row just read with its credential, unless a write is changing that node's row. */
    keep(hash: string, row: CredentialRow) {
      const id = String(row.id)
      if (pending.has(id)) return
      drop(id)
      const fresh = { hash, row, readAt: performance.now() }
      byId.set(id, fresh)
      byHash.set(hash, fresh)
    },
    drop,
    /**
     * Marks these nodes' rows as being written through the other handle: until the returned function
     * is called, nothing is kept for them, and calling it drops what was.
     */
    changing(ids: string[]): () => void {
      for (const id of ids) {
        pending.set(id, (pending.get(id) ?? 0) + 1)
        drop(id)
      }
      let done = false
      return () => {
        if (done) return
        done = true
        for (const id of ids) {
          const left = (pending.get(id) ?? 1) - 1
          if (left > 0) pending.set(id, left)
          else pending.delete(id)
          drop(id)
        }
      }
    },
    /** Drops the rows read more than KNOWN_MS ago. */
    expire() {
      const old = performance.now() - KNOWN_MS
      for (const [id, k] of byId) if (k.readAt < old) drop(id)
    },
    clear() {
      byId.clear()
      byHash.clear()
    },
  }
}
