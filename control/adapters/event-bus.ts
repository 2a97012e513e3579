// The in-process event bus: delivers events already committed to the store to live subscribers
// (the SSE stream, dashboards). A subscriber that throws is logged and kept; it cannot stop delivery.
import { createLogger } from "../../protocol/log.ts"
import type { FleetEvent } from "../domain/events.ts"
import type { EventBusPort } from "../domain/ports.ts"

const log = createLogger("event-bus")

export function createEventBus(): EventBusPort {
  const handlers = new Set<(event: FleetEvent) => void>()
  return {
    publish(events) {
      for (const event of events)
        for (const handler of handlers) {
          try {
            handler(event)
          } catch (error) {
            log.error("subscriber failed", { error, type: event.type })
          }
        }
    },
    subscribe(handler) {
      handlers.add(handler)
      return () => handlers.delete(handler)
    },
  }
}
