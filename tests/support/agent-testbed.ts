// A testbed whose nodes run real agents enrolled with `cp`, each with a join token of its own, ready
// once every node has been heard from (its first heartbeat stored): what the tests that relay
// commands through agents start from.
import type { TestControlPlane } from "./control-plane.ts"
import { createTestbed, type Testbed } from "./testbed.ts"
import { waitFor } from "./wait.ts"

export async function agentTestbed(cp: TestControlPlane, opts: { nodes: number; prefix: string }): Promise<Testbed> {
  const joinTokens: string[] = []
  for (let i = 0; i < opts.nodes; i++) {
    const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
    joinTokens.push(((await res.json()) as { token: string }).token)
  }
  const bed = await createTestbed({ nodes: opts.nodes, prefix: opts.prefix, agent: { controlUrl: cp.url, joinTokens } })
  for (const { name } of bed.nodes)
    await waitFor(
      `${name} enrolled and heard from`,
      async () => (await (await cp.api(`/api/nodes/${name}`)).json()) as { lastHeartbeat?: string | null },
      (n) => typeof n.lastHeartbeat === "string",
    )
  return bed
}
