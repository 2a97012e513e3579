// A deploy turned away by the node's claim, because another operator's deploy was switching the node
// (node-claim.ts), changed nothing and failed nothing there: its target is recorded `refused` with the
// claim's words, and it neither opens a deploy-failed incident (an operator paged for it would look
// for a failure that is not there) nor resolves one. A real control plane deploys over SSH to a real
// testbed node; the other operator's activation runs on the node itself, started as this deploy's
// copy ends, so that it claims the node after this deploy planned and before it activates.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import { activateScript, confirmScript } from "../control/domain/activation.ts"
import { BUSY_SAYS } from "../control/domain/node-claim.ts"
import type { RemoteExecutorPort } from "../control/domain/operation-ports.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

let bed: Testbed
let node: TestbedNode
let cp: TestControlPlane
let gen1: StorePath
let gen2: StorePath
let broken: StorePath
let slow: StorePath
/** Run once, after the next deploy's copy and before its activation. */
let afterCopy: (() => Promise<void>) | null = null

beforeAll(async () => {
  ;[gen1, gen2, broken, slow] = await Promise.all([
    buildTestSystem(1, { tag: "refused" }),
    buildTestSystem(2, { tag: "refused" }),
    buildTestSystem(3, { tag: "refused", failSwitch: true }),
    buildTestSystem(4, { tag: "refused", slowSwitch: 2 }),
  ])
  bed = await createTestbed({ nodes: 1, boot: gen1, prefix: "refused" })
  node = bed.nodes[0]!
  const targets = commandTargets(
    { nodes: [{ name: node.name, address: node.target, tags: [] }], targets: [] },
    { identity: bed.identityFile, knownHosts: bed.knownHostsFile },
  )
  const ssh = targets.executor
  // The real executor, given the moment between copy and activation for the other operator's deploy.
  const executor: RemoteExecutorPort = {
    exec: (...a) => ssh.exec(...a),
    execMany: (...a) => ssh.execMany(...a),
    systemState: (t) => ssh.systemState(t),
    close: () => ssh.close(),
    async syncClosure(...a) {
      const copied = await ssh.syncClosure(...a)
      const then = afterCopy
      afterCopy = null
      await then?.()
      return copied
    },
  }
  cp = await startInProcess({ commandTargets: { ...targets, executor } })
}, 120_000)

afterAll(async () => {
  await cp?.stop()
  await bed?.stop()
})

type Target = { target: string; status: string; error: string | null }

async function deploy(closure: StorePath): Promise<{ id: string; status: string; targets: Target[] }> {
  const started = await cp.api("/api/deployments", {
    method: "POST",
    body: JSON.stringify({ targets: [node.name], closure }),
  })
  expect(started.status).toBe(202)
  const { id } = (await started.json()) as { id: string }
  const view = async () =>
    (await (await cp.api(`/api/deployments/${id}`)).json()) as { id: string; status: string; targets: Target[] }
  return waitFor(`deployment ${id}`, view, (d) => d.status !== "running", 60_000)
}

/** Another operator's activation of `slow`, claiming the node as the next deploy's copy ends. */
function anotherOperator(id: string): { done: Promise<unknown> } {
  const out = { done: Promise.resolve() as Promise<unknown> }
  afterCopy = async () => {
    const script = activateScript({ deployId: id, closure: slow, isSystem: true, confirmTimeoutSeconds: 120 })
    out.done = node.node.exec(["sh", "-c", script])
    await waitFor(
      `${id}'s claim`,
      () => node.node.exec(["test", "-s", `/run/chimera/deploys/${id}/under-way.pid`]),
      (r) => r.code === 0,
    )
  }
  return out
}

/** Lets the other operator's activation end and confirms it, as that operator's deploy would. */
async function confirm(id: string, other: { done: Promise<unknown> }) {
  await other.done
  expect((await node.node.exec(["sh", "-c", confirmScript(id, true)])).code).toBe(0)
}

const incidents = async () =>
  (
    (await (await cp.api(`/api/incidents?node=${node.name}`)).json()) as {
      incidents: { id: string; status: string; message: string; occurrences: number }[]
    }
  ).incidents

test("a deploy refused by another's claim is recorded refused and neither opens nor resolves a deploy-failed incident", async () => {
  // 1. Refused on a node with no incident: it is told why, and opens none.
  const first = anotherOperator("other-1")
  const refused = await deploy(gen2)
  await confirm("other-1", first)
  expect(refused.status).toBe("failed")
  expect(refused.targets).toMatchObject([{ target: node.name, status: "refused" }])
  expect(refused.targets[0]?.error).toContain(`${BUSY_SAYS}: other-1`)
  expect(refused.targets[0]?.error).toContain("nothing was changed here")
  expect(await node.node.links()).toMatchObject({ profile: slow, current: slow })

  // A deploy that does fail opens one; incidents follow deployments in order, so the refused one's
  // turn has come by then: the only incident is this deploy's, seen once.
  const failed = await deploy(broken)
  expect(failed.targets).toMatchObject([{ status: "rolled-back" }])
  const opened = await waitFor("the failed deploy's incident", incidents, (l) => l.length > 0)
  expect(opened).toMatchObject([{ status: "open", occurrences: 1 }])
  expect(opened[0]?.message).toContain(`deployment ${failed.id}`)

  // 2. Refused while that incident is open: it neither adds to it nor resolves it; the next deploy
  // that reaches the node does.
  const second = anotherOperator("other-2")
  const again = await deploy(gen2)
  await confirm("other-2", second)
  expect(again.targets).toMatchObject([{ status: "refused" }])
  const reached = await deploy(gen2)
  expect(reached.targets).toMatchObject([{ status: "deployed" }])
  const [resolved] = await waitFor("the incident resolved", incidents, (l) => l[0]?.status === "resolved")
  expect(resolved?.occurrences).toBe(1)
  const detail = (await (await cp.api(`/api/incidents/${resolved?.id}`)).json()) as {
    timeline: { step: string; message?: string }[]
  }
  expect(detail.timeline.map((t) => t.step)).toEqual(["opened", "resolved"])
  expect(JSON.stringify(detail.timeline)).not.toContain(again.id)
  expect(JSON.stringify(detail.timeline)).toContain(reached.id)
})
