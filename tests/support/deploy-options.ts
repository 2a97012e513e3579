// The domain's deploy of a configuration to one testbed node, as the CLI would start it, with the
// short windows tests use (a 5 s confirm window, a 2 s health timeout); `more` overrides any of it.
import { emptyInventory, resolveTargets } from "../../control/adapters/ssh/index.ts"
import type { DeployOptions } from "../../control/domain/deploy.ts"
import type { TestbedNode } from "./testbed.ts"

export const oneTarget = (n: TestbedNode, configPath: string, more: Partial<DeployOptions> = {}): DeployOptions => ({
  targets: resolveTargets(n.target, emptyInventory),
  configPath,
  command: null,
  session: "chimera-deploy",
  dryRun: false,
  force: false,
  confirmTimeoutSeconds: 5,
  healthChecks: [],
  healthTimeoutSeconds: 2,
  useSubstitutes: false,
  parallel: 1,
  ...more,
})
