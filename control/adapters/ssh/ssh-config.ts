// Where a target really is, as the operator's OpenSSH configuration has it. Chimera does not parse
// ssh_config: it asks ssh itself (`ssh -G`, which prints the effective settings after Host, Match,
// Include and wildcards) and uses HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump,
// ProxyCommand, HostKeyAlias and UserKnownHostsFile from the answer. What the operator gave Chimera
// explicitly (a user or port in the target, a node's address) goes to `ssh -G` as -l/-p, so it beats
// the file exactly as it would on ssh's command line; Chimera's own defaults (root, 22) are left out
// and only fill in what the file does not say. The closure copy runs the real ssh with the same
// arguments, so both halves of a deploy take one route. Answers are cached for the process, and at
// most a few `ssh -G` run at once. A configuration with no `Host` or `Match` but `Host *`, and that
// does not canonicalise host names (Debian's own, or none at all), says the same of every host: one
// `ssh -G` for a name no host has answers for all of them (_generalAnswer), unless its answer mentions
// that name beyond `host` and `hostname`.
// Without an ssh binary there is no configuration to read: the target is dialled as written.
import { hostname, userInfo } from "node:os"
import type { Target } from "../../domain/operation-ports.ts"
import { configFile, configFiles, homeOf, hostSpecific, sshHome } from "./ssh-config-files.ts"

export interface RouteRequest {
  host: string
  /** Only when the operator gave it; otherwise ~/.ssh/config, then root. */
  user?: string
  /** Only when the operator gave it; otherwise ~/.ssh/config, then 22. */
  port?: number
}

export interface SshRoute {
  /** The name the operator used (an alias, or the address itself). */
  alias: string
  /** HostName, User and Port: where the TCP connection and the login go. */
  host: string
  user: string
  port: number
  /** IdentityFile entries, `~` and tokens expanded, in the order ssh tries them ([] when ssh is missing). */
  identityFiles: string[]
  /** True when the file names its own IdentityFile entries (not ssh's built-in list). */
  identitiesConfigured: boolean
  identitiesOnly: boolean
  hostKeyAlias: string | null
  /** The first UserKnownHostsFile when the file sets one; null for Chimera's default. */
  knownHostsFile: string | null
  /** ProxyJump hops, first hop first. */
  proxyJump: RouteRequest[]
  proxyCommand: string | null
  /** The -p/-l passed to `ssh -G`: the copy passes the same, so ssh resolves the same. */
  sshArgs: string[]
  /** The -F file `ssh -G` read, or null for ssh's own files. */
  configFile: string | null
  /** False when no ssh binary was found and the target is dialled as written. */
  fromConfig: boolean
}

const MAX_AT_ONCE = 8
const DEFAULT_IDENTITIES = ["id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"]

/** What the operator gave explicitly for `t` (Chimera's defaults left out). */
export function routeRequest(t: Target): RouteRequest {
  return {
    host: t.host,
    ...(t.defaulted?.user ? {} : { user: t.user }),
    ...(t.defaulted?.port ? {} : { port: t.port }),
  }
}

/** A ProxyJump entry: `[user@]host[:port]` or `ssh://[user@]host[:port]`. */
export function parseJump(spec: string): RouteRequest {
  let text = spec.trim().replace(/^ssh:\/\//, "")
  const at = text.lastIndexOf("@")
  const user = at >= 0 ? text.slice(0, at) : undefined
  text = at >= 0 ? text.slice(at + 1) : text
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  const plain = /^([^:]+)(?::(\d+))?$/.exec(text)
  const m = bracket ?? plain
  const host = m?.[1] ?? text
  const port = m?.[2] ? Number(m[2]) : undefined
  return { host, ...(user ? { user } : {}), ...(port ? { port } : {}) }
}

/** The arguments for `ssh` that carry what the operator gave explicitly (before the host). */
export function explicitArgs(req: RouteRequest): string[] {
  return [
    ...(req.port === undefined ? [] : ["-p", String(req.port)]),
    ...(req.user === undefined ? [] : ["-l", req.user]),
  ]
}

function _expand(path: string, env: Record<string, string | undefined>, r: Omit<SshRoute, "identityFiles">): string {
  const home = homeOf(env)
  const local = userInfo().username
  const tokens: Record<string, string> = {
    "%": "%",
    d: home,
    u: local,
    h: r.host,
    r: r.user,
    p: String(r.port),
    n: r.alias,
    i: String(process.getuid?.() ?? ""),
    l: hostname(),
    L: hostname().split(".")[0] ?? "",
    k: r.hostKeyAlias ?? r.alias,
  }
  return path
    .replace(/^~(?=\/|$)/, home)
    .replace(/%([%dhrpunilLk])/g, (_, k: string) => tokens[k] ?? "")
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k: string) => env[k] ?? "")
}

export function parseSshG(
  text: string,
  alias: string,
  sshArgs: string[],
  config: string | null,
  env: Record<string, string | undefined>,
): SshRoute {
  const values = new Map<string, string[]>()
  for (const line of text.split("\n")) {
    const space = line.indexOf(" ")
    if (space <= 0) continue
    const key = line.slice(0, space).toLowerCase()
    values.set(key, [...(values.get(key) ?? []), line.slice(space + 1).trim()])
  }
  const one = (key: string) => values.get(key)?.[0]
  const pw = sshHome() ?? homeOf(env)
  const known = (one("userknownhostsfile") ?? "").split(/\s+/).filter(Boolean)
  const defaultKnown = known.join(" ") === `${pw}/.ssh/known_hosts ${pw}/.ssh/known_hosts2`
  const jump = one("proxyjump")
  const command = one("proxycommand")
  const base = {
    alias,
    host: one("hostname") ?? alias,
    user: one("user") ?? "root",
    port: Number(one("port") ?? 22),
    identitiesOnly: one("identitiesonly") === "yes",
    hostKeyAlias: one("hostkeyalias") ?? null,
    knownHostsFile: known.length && !defaultKnown ? (known[0] as string) : null,
    proxyJump: jump && jump !== "none" ? jump.split(",").map(parseJump) : [],
    proxyCommand: command && command !== "none" ? command : null,
    sshArgs,
    configFile: config,
    fromConfig: true,
  }
  // `IdentityFile none` names no file: ssh then offers the agent's keys alone, as here.
  const files = (values.get("identityfile") ?? []).filter((f) => f.toLowerCase() !== "none")
  const builtIn = files.join(" ") === DEFAULT_IDENTITIES.map((f) => `~/.ssh/${f}`).join(" ")
  return {
    ...base,
    identitiesConfigured: !builtIn,
    identityFiles: files.map((f) => _expand(f, env, { ...base, identitiesConfigured: !builtIn })),
  }
}

const cache = new Map<string, Promise<SshRoute>>()
let running = 0
const waiting: (() => void)[] = []

async function _limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_AT_ONCE) await new Promise<void>((resolve) => waiting.push(resolve))
  running++
  try {
    return await fn()
  } finally {
    running--
    waiting.shift()?.()
  }
}

/** A failure to read the configuration for a target: its message names the host and ssh's words. */
export class SshConfigError extends Error {
  override readonly name = "SshConfigError"
}

async function _ask(
  ssh: string,
  req: RouteRequest,
  config: string | null,
  env: Record<string, string | undefined>,
): Promise<SshRoute> {
  return parseSshG(await _askText(ssh, req, config, env), req.host, explicitArgs(req), config, env)
}

/** `ssh -G`'s answer for `req`, as text. */
async function _askText(
  ssh: string,
  req: RouteRequest,
  config: string | null,
  env: Record<string, string | undefined>,
): Promise<string> {
  const args = [...(config ? ["-F", config] : []), ...explicitArgs(req)]
  const proc = Bun.spawn([ssh, ...args, "-G", "--", req.host], {
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  if (code !== 0)
    throw new SshConfigError(
      `ssh -G ${[...args, req.host].join(" ")} exited ${code} reading the SSH configuration: ${stderr.trim() || "no output"}`,
    )
  return stdout
}

const general = new Map<string, Promise<string | null>>()

/**
 * ssh's answer for every host at once, as text to be given each host's name: null when the files say
 * different things of different hosts, or the answer names the asked name beyond `host` and `hostname`
 * (a token such as `%h` in a `Host *` setting), and each host must be asked about on its own.
 */
function _generalAnswer(
  ssh: string,
  req: RouteRequest,
  config: string | null,
  env: Record<string, string | undefined>,
): Promise<string | null> {
  const key = JSON.stringify([config, req.user, req.port])
  const kept = general.get(key)
  if (kept) return kept
  const asked = (async () => {
    if (hostSpecific(configFiles(config, env), sshHome() ?? homeOf(env))) return null
    const probe = `chimera-probe-${crypto.randomUUID().slice(0, 8)}.invalid`
    // A configuration ssh refuses is reported by each host's own question, naming that host.
    const text = await _limited(() => _askText(ssh, { ...req, host: probe }, config, env)).catch(() => null)
    if (text === null) return null
    const lines = text.split("\n")
    const named = lines.filter((l) => l.includes(probe))
    if (named.some((l) => l !== `host ${probe}` && l !== `hostname ${probe}`)) return null
    return lines.filter((l) => !l.includes(probe)).join("\n")
  })()
  asked.catch(() => general.delete(key))
  general.set(key, asked)
  return asked
}

async function _route(
  ssh: string,
  req: RouteRequest,
  config: string | null,
  env: Record<string, string | undefined>,
): Promise<SshRoute> {
  const shared = await _generalAnswer(ssh, req, config, env)
  // ssh keeps the name as given in `host` and lowercases it in `hostname`; a HostName that `Host *`
  // sets for all is in the shared answer, and comes first, so it wins as the first value does.
  if (shared !== null)
    return parseSshG(
      `host ${req.host}\n${shared}\nhostname ${req.host.toLowerCase()}`,
      req.host,
      explicitArgs(req),
      config,
      env,
    )
  return _limited(() => _ask(ssh, req, config, env))
}

/** The route OpenSSH would take to `req`, once per process for each distinct request. */
export function resolveRoute(
  req: RouteRequest,
  env: Record<string, string | undefined> = process.env,
): Promise<SshRoute> {
  const config = configFile(env)
  const key = JSON.stringify([config, req])
  const hit = cache.get(key)
  if (hit) return hit
  const ssh = Bun.which("ssh", { PATH: env.PATH ?? process.env.PATH ?? "" })
  const made = ssh
    ? _route(ssh, req, config, env)
    : Promise.resolve<SshRoute>({
        alias: req.host,
        host: req.host,
        user: req.user ?? "root",
        port: req.port ?? 22,
        identityFiles: [],
        identitiesConfigured: false,
        identitiesOnly: false,
        hostKeyAlias: null,
        knownHostsFile: null,
        proxyJump: [],
        proxyCommand: null,
        sshArgs: explicitArgs(req),
        configFile: config,
        fromConfig: false,
      })
  // A failed answer is not kept: the next operation asks again (the file may have been fixed).
  made.catch(() => cache.delete(key))
  cache.set(key, made)
  return made
}
