// A deploy whose control plane stopped before it finished, as tests need one: its start (naming a
// replica that is not running) and one target's progress, written straight into a control plane's
// SQLite database, as the stopped one would have left them.
import { join } from "node:path"
import { replicaName } from "../../control/adapters/replica-liveness.ts"
import { openDatabase, sqlStore } from "../../control/adapters/store/sql-store.ts"
import { deploymentId } from "../../control/domain/deployment-record.ts"

/** A replica name on this host whose process is not running: this PID with a start time it never had. */
export const goneReplica = () => replicaName().replace(/\/\d+:[\d?]+$/, `/${process.pid}:1`)

/**
 * Leaves in `dataDir`'s database a deploy to `target` started two minutes ago by a replica that is
 * gone, its last event (`copy: copying`) a minute ago; returns its id.
 */
export async function leaveStoppedDeploy(dataDir: string, target: string): Promise<string> {
  const id = deploymentId(new Date(Date.now() - 120_000).toISOString())
  const { db, dialect } = await openDatabase(`sqlite://${join(dataDir, "chimera.db")}`)
  const store = sqlStore(db, dialect)
  try {
    const at = new Date(Date.now() - 60_000).toISOString()
    await store.appendEvent({
      type: "deployment.started",
      nodeId: null,
      at,
      data: { id, targets: [target], replica: goneReplica() },
    })
    await store.appendEvent({
      type: "deployment.progress",
      nodeId: null,
      at,
      data: { id, target, phase: "copy", message: "copying" },
    })
  } finally {
    await store.close()
  }
  return id
}
