// Re-renders a component whenever a store it reads from says it changed.
import { useEffect, useState } from "preact/hooks"

export function useSubscription(store: { subscribe(listener: () => void): () => void }): void {
  const [, setTick] = useState(0)
  useEffect(() => store.subscribe(() => setTick((t) => t + 1)), [store])
}

/** Re-renders every `ms` (relative times such as "3s ago"). */
export function useTicker(ms: number): void {
  const [, setTick] = useState(0)
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), ms)
    return () => clearInterval(t)
  }, [ms])
}
