// `chimera deploy --via-control-plane`: the control plane runs the deploy with its own SSH key and
// [fleet.nodes], and the CLI follows its progress (GET /api/deployments/:id) until it ends. The
// configuration is built on the control plane's host, so CONFIG is a path there (admins only; an
// operator deploys a closure already built, given as /nix/store/…).
import * as p from "@clack/prompts"
import type { DeploymentRecord } from "../domain/deploy.ts"
import type { UnfinishedDeployment } from "../ops/fleet-operations.ts"
import { apiClient, call } from "./client.ts"
import { CliError } from "./errors.ts"
import { field, warn } from "./output.ts"

export interface RemoteDeploy {
  targets: string
  config: string
  command: string | null
  session: string
  confirmTimeout: number
  healthTimeout: number
  healthCmd: string[]
  healthUrl: string[]
  dryRun: boolean
  force: boolean
  json: boolean
}

export async function deployViaControlPlane(d: RemoteDeploy): Promise<DeploymentRecord> {
  const { url, client } = apiClient()
  const targets = d.targets
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "")
  if (targets.length === 0)
    throw new CliError("--targets: name the nodes ([fleet.nodes] names or @tag on the control plane)", "E_ARG")
  const closure = d.config.startsWith("/nix/store/")
  const started = await call(
    url,
    client.api.deployments.$post({
      json: {
        targets,
        ...(closure ? { closure: d.config as `/nix/store/${string}` } : { config_path: d.config }),
        command: d.command,
        session: d.session,
        health_cmd: d.healthCmd,
        health_url: d.healthUrl,
        health_timeout_seconds: d.healthTimeout,
        confirm_timeout_seconds: d.confirmTimeout,
        dry_run: d.dryRun,
        force: d.force,
      } as never,
    }),
  )
  const id = (started as { id: string }).id
  const spin = !d.json && process.stdout.isTTY === true ? p.spinner() : null
  spin?.start(`deploy ${id} on ${url}`)
  let said = ""
  for (;;) {
    const view = (await call(url, client.api.deployments[":id"].$get({ param: { id } }))) as
      | DeploymentRecord
      | UnfinishedDeployment
    if (view.status === "interrupted") {
      spin?.stop(`deploy ${id}: interrupted`)
      throw new CliError(`deploy ${id} was interrupted: ${view.reason}`, "E_INTERRUPTED")
    }
    if (view.status !== "running") {
      spin?.stop(`deploy ${id}: ${view.status}`)
      return view
    }
    const now = Object.entries(view.progress)
      .map(([t, s]) => `${t}: ${s}`)
      .join("; ")
    if (now !== said) {
      said = now
      if (spin) spin.message(now)
      else if (!d.json) warn(`${field(now)}\n`)
    }
    await Bun.sleep(250)
  }
}
