// Keys (node ids, rate-limit keys) to small reusable numbers, for per-key figures kept in typed
// arrays instead of an object per key: a heartbeat then reaches its node's figures through one
// number (health-history.ts, auth/rate-limiter.ts). A forgotten key's slot serves the next new key.

export class Slots {
  readonly #byKey = new Map<string, number>()
  readonly #free: number[] = []

  /** Keys that have a slot. */
  get size(): number {
    return this.#byKey.size
  }

  get(key: string): number | undefined {
    return this.#byKey.get(key)
  }

  /**
   * A slot for a key that has none: a forgotten key's, or else the next number never used (with none
   * free, the slots in use are exactly 0 to size - 1). The caller resets what the slot held.
   */
  add(key: string): number {
    const slot = this.#free.pop() ?? this.#byKey.size
    this.#byKey.set(key, slot)
    return slot
  }

  /** Forgets the key; its slot goes to the next new key. */
  delete(key: string): void {
    const slot = this.#byKey.get(key)
    if (slot === undefined) return
    this.#byKey.delete(key)
    this.#free.push(slot)
  }

  entries(): IterableIterator<[string, number]> {
    return this.#byKey.entries()
  }
}
