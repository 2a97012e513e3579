// One version for the agent and the control plane, from package.json (bundled into compiled binaries).
import pkg from "../package.json" with { type: "json" }

export const VERSION: string = pkg.version
