// After a deploy, the control plane learns each target's new closure so the node's agent keeps it
// (otherwise the agent would heal the node back to the old one). Only targets that are enrolled
// nodes of that name are updated; with no control plane configured there is nothing to do.
import { existsSync } from "node:fs"
import { join } from "node:path"
import { createLogger } from "../../protocol/log.ts"
import { dataDir } from "../config.ts"
import type { DeploymentRecord } from "../domain/deploy.ts"
import { apiClient } from "./client.ts"
import { color } from "./output.ts"

const log = createLogger("deploy")

export async function publishDesired(record: DeploymentRecord, env = process.env): Promise<string[]> {
  const configured = Boolean(env.CHIMERA_URL) || existsSync(join(dataDir(env), "admin.token"))
  if (!configured) return []
  const done = record.targets.filter((t) => t.status === "deployed" || t.status === "up-to-date")
  if (done.length === 0) return []
  let client: ReturnType<typeof apiClient>
  try {
    client = apiClient(env)
  } catch (error) {
    log.warn("not publishing desired closures", { reason: (error as Error).message })
    return []
  }
  const updated: string[] = []
  for (const t of done) {
    try {
      const res = await client.client.api.nodes[":id"].desired.$put({
        param: { id: t.target },
        json: { closure: record.closure },
      })
      if (res.ok) updated.push(t.target)
    } catch (error) {
      log.warn("control plane unreachable; desired closures not published", {
        url: client.url,
        reason: (error as Error).message,
      })
      break
    }
  }
  if (updated.length > 0 && process.stdout.isTTY)
    process.stderr.write(`${color.dim(`desired closure set on the control plane for ${updated.join(", ")}`)}\n`)
  return updated
}
