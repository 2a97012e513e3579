// The programs a CLI session can run: a plain bash, or one of the AI coding tools. A
// provider is available when its binary is on the control plane's PATH; nothing is installed or
// downloaded on demand. Each knows the flags that pick a model and that turn the tool's own approval
// prompts off (`full_access`, which needs cli:full_access, as does bash itself).
import { accessSync, constants } from "node:fs"
import { z } from "zod"
import type { Clock } from "./ports.ts"

export const ProviderName = z.enum(["bash", "claude", "codex", "gemini", "cursor"])
export type ProviderName = z.infer<typeof ProviderName>

interface ProviderSpec {
  displayName: string
  binary: string
  type: "shell" | "cli"
  models: string[]
  capabilities: string[]
  /** The variable holding the tool's API key, when it reads one (it may log in another way). */
  keyVariable: string | null
  modelFlag: string | null
  fullAccessFlags: string[]
  baseArgs: string[]
}

const SPECS: Record<ProviderName, ProviderSpec> = {
  // A clean, predictable shell: the session runs commands through tmux-run-script.ts, not a user's rc.
  bash: {
    displayName: "Bash",
    binary: "bash",
    type: "shell",
    models: [],
    capabilities: ["execution", "full-access"],
    keyVariable: null,
    modelFlag: null,
    fullAccessFlags: [],
    baseArgs: ["--noprofile", "--norc"],
  },
  claude: {
    displayName: "Claude CLI",
    binary: "claude",
    type: "cli",
    models: ["claude-3-5-sonnet-latest", "claude-3-opus-latest"],
    capabilities: ["code-generation", "analysis", "full-access"],
    keyVariable: "ANTHROPIC_API_KEY",
    modelFlag: "--model",
    fullAccessFlags: ["--dangerously-skip-permissions"],
    baseArgs: [],
  },
  codex: {
    displayName: "Codex CLI",
    binary: "codex",
    type: "cli",
    models: ["default"],
    capabilities: ["code-generation", "execution", "full-access"],
    keyVariable: "OPENAI_API_KEY",
    modelFlag: "--model",
    fullAccessFlags: ["--dangerously-bypass-approvals-and-sandbox"],
    baseArgs: [],
  },
  gemini: {
    displayName: "Gemini CLI",
    binary: "gemini",
    type: "cli",
    models: ["default"],
    capabilities: ["code-generation", "analysis", "full-access"],
    keyVariable: "GEMINI_API_KEY",
    modelFlag: "--model",
    fullAccessFlags: ["--yolo"],
    baseArgs: [],
  },
  cursor: {
    displayName: "Cursor Agent CLI",
    binary: "cursor-agent",
    type: "cli",
    models: ["default"],
    capabilities: ["code-generation", "execution", "full-access"],
    keyVariable: "CURSOR_API_KEY",
    modelFlag: "--model",
    fullAccessFlags: ["--force"],
    baseArgs: [],
  },
}

export interface ProviderView {
  name: ProviderName
  displayName: string
  type: "shell" | "cli"
  available: boolean
  /** Why it is not available (the missing binary), when it is not. */
  reason?: string
  models: string[]
  capabilities: string[]
  status: { healthy: boolean; binaryPath: string | null; version: string | null; lastCheck: string }
}

export interface ProviderHealth {
  provider: ProviderName
  healthy: boolean
  checks: { binaryExists: boolean; binaryExecutable: boolean; environmentVariables: boolean; testExecution: boolean }
  details: { binaryPath: string | null; version: string | null; reason?: string }
}

const VERSION_TIMEOUT_MS = 5000

function _executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `<binary> --version`, first line, or null when it does not answer in time or fails. */
async function _version(path: string): Promise<string | null> {
  const proc = Bun.spawn([path, "--version"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" })
  const timer = setTimeout(() => proc.kill("SIGKILL"), VERSION_TIMEOUT_MS)
  try {
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    return code === 0 ? (out.split("\n")[0]?.trim().slice(0, 200) ?? null) : null
  } finally {
    clearTimeout(timer)
  }
}

/** `path`: where binaries are looked for (default: the control plane's PATH). */
export function createProviders({ clock, path }: { clock: Clock; path?: string }) {
  const which = (name: ProviderName) => Bun.which(SPECS[name].binary, path === undefined ? {} : { PATH: path })
  const missing = (name: ProviderName) => `${SPECS[name].binary} is not on the control plane's PATH`

  return {
    spec: (name: ProviderName) => SPECS[name],
    /** The binary's path, or null with the reason. */
    locate(name: ProviderName): { path: string } | { path: null; reason: string } {
      const found = which(name)
      return found ? { path: found } : { path: null, reason: missing(name) }
    },
    /** The argv that starts the provider in a session. */
    argv(name: ProviderName, binaryPath: string, opts: { model?: string; fullAccess: boolean }): string[] {
      const spec = SPECS[name]
      const model = opts.model !== undefined && spec.modelFlag ? [spec.modelFlag, opts.model] : []
      return [binaryPath, ...spec.baseArgs, ...model, ...(opts.fullAccess ? spec.fullAccessFlags : [])]
    },
    list(): ProviderView[] {
      return ProviderName.options.map((name) => {
        const spec = SPECS[name]
        const found = which(name)
        return {
          name,
          displayName: spec.displayName,
          type: spec.type,
          available: found !== null,
          ...(found ? {} : { reason: missing(name) }),
          models: spec.models,
          capabilities: spec.capabilities,
          status: { healthy: found !== null, binaryPath: found, version: null, lastCheck: clock.now().toISOString() },
        }
      })
    },
    async health(name: ProviderName): Promise<ProviderHealth> {
      const spec = SPECS[name]
      const found = which(name)
      const executable = found !== null && _executable(found)
      const version = executable ? await _version(found) : null
      const healthy = executable && version !== null
      return {
        provider: name,
        healthy,
        checks: {
          binaryExists: found !== null,
          binaryExecutable: executable,
          // Informational: the tools can also log in interactively, so a missing key is not unhealthy.
          environmentVariables: spec.keyVariable === null || Boolean(process.env[spec.keyVariable]),
          testExecution: version !== null,
        },
        details: { binaryPath: found, version, ...(found ? {} : { reason: missing(name) }) },
      }
    },
  }
}

export type Providers = ReturnType<typeof createProviders>
