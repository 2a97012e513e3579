// A notice as the incident worker would hand it to a channel: a heal that failed on web-1, with both
// closures and a dashboard link. Tests override what they are about.
import type { Notice } from "../../control/domain/notifications.ts"

export const DESIRED = "/nix/store/0d1k3v7m9q2w5x8z4c6b1n3f5h7j9l2p-nixos-system-web-1-24.11"
export const CURRENT = "/nix/store/9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k-nixos-system-web-1-24.11"

export function notice(over: Partial<Notice> = {}): Notice {
  return {
    incidentId: "inc-42",
    step: "opened",
    node: "web-1",
    problem: "heal-failed",
    severity: "critical",
    title: "web-1: heal failed",
    message: "switch-to-configuration exited 1: unit nginx.service failed to start",
    closures: { desired: DESIRED, current: CURRENT },
    dashboardUrl: "http://127.0.0.1:8080/#/nodes/web-1",
    at: "2026-12-06T04:00:00.000Z",
    ...over,
  }
}
