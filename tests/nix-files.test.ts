// The NixOS install files (nix/*.nix) checked as far as this machine allows. There is no nixpkgs here,
// so nothing can be built against it or evaluated by the real NixOS module system. What runs for real:
// Nix parses every file, and Nix evaluates module.nix, package.nix and flake.nix with a small stand-in
// for nixpkgs' `lib` (below, in Nix): enough to prove the module declares its options with the right
// defaults and turns them into the unit it should (credential, hardening, flags), not that nixpkgs'
// types accept them.
import { describe, expect, test } from "bun:test"
import { readdir } from "node:fs/promises"
import { join } from "node:path"
import { requireTool, run } from "./support/tools.ts"

const NIX_DIR = join(import.meta.dir, "..", "nix")
const NIX_ENV = { NIX_CONFIG: `${process.env.NIX_CONFIG ?? ""}\nsubstituters =\n` }

async function nixFiles(): Promise<string[]> {
  const entries = await readdir(NIX_DIR, { recursive: true })
  return entries.filter((f) => f.endsWith(".nix")).map((f) => join(NIX_DIR, f))
}

/** Evaluates a Nix expression strictly and returns it as JSON; throws with Nix's error otherwise. */
async function evalJson(expr: string): Promise<unknown> {
  const result = await run([requireTool("nix-instantiate"), "--eval", "--strict", "--json", "--expr", expr], {
    env: NIX_ENV,
  })
  if (result.code !== 0) throw new Error(`nix-instantiate --eval failed:\n${result.stderr}`)
  return JSON.parse(result.stdout)
}

// Just the parts of nixpkgs' lib the three files use, with the same meaning.
const STUB_LIB = `
  rec {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption { type = types.bool; default = false; description = "Whether to enable \${name}."; };
    mkDefault = value: { _type = "override"; priority = 1000; content = value; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    types = {
      bool = "bool"; str = "str"; package = "package"; ints.positive = "positive integer"; ints.between = lo: hi: "integer between \${toString lo} and \${toString hi}";
      nullOr = t: "null or \${t}"; listOf = t: "list of \${t}"; nonEmptyListOf = t: "non-empty list of \${t}";
      either = a: b: "\${a} or \${b}";
      enum = values: "one of \${builtins.concatStringsSep ", " values}";
    };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    concatStringsSep = builtins.concatStringsSep;
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    escapeShellArg = arg: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] (toString arg) + "'";
    getExe = pkg: "\${pkg}/bin/\${pkg.meta.mainProgram}";
    importJSON = path: builtins.fromJSON (builtins.readFile path);
    genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    licenses.mit = { spdxId = "MIT"; };
    sourceTypes.binaryNativeCode = "binaryNativeCode";
  }`

/** module.nix applied to `settings` (merged over required values), as NixOS would call it. */
function moduleExpr(settings: string): string {
  return `
    let
      lib = ${STUB_LIB};
      agent = { outPath = "/nix/store/00000000000000000000000000000000-chimera-agent"; meta.mainProgram = "chimera-agent"; };
      cfg = { enable = true; package = agent; controlUrl = "https://cp.example"; joinTokenFile = null; nodeId = "web-1";
              heartbeat = 5; driftInterval = 30; failbackInterval = 300; spreadReplicas = false; autoHeal = true; logLevel = "info"; extraArgs = [ ]; } // (${settings});
      module = import ${JSON.stringify(join(NIX_DIR, "module.nix"))} {
        inherit lib;
        pkgs = { util-linux = "/nix/store/util-linux"; };
        config = { services.chimera-agent = cfg; networking.hostName = "host-from-networking";
                   nix.package = "/nix/store/nix"; systemd.package = "/nix/store/systemd"; };
      };
    in module`
}

describe("nix/*.nix", () => {
  test("every file parses with nix-instantiate --parse", async () => {
    const nixInstantiate = requireTool("nix-instantiate")
    const files = await nixFiles()
    expect(files.map((f) => f.slice(NIX_DIR.length + 1)).sort()).toEqual(
      expect.arrayContaining(["flake.nix", "module.nix", "package.nix"]),
    )
    for (const file of files) {
      const result = await run([nixInstantiate, "--parse", file], { env: NIX_ENV })
      expect({ file, code: result.code, stderr: result.stderr }).toEqual({ file, code: 0, stderr: "" })
    }
  })
})

describe("module.nix (services.chimera-agent)", () => {
  test("declares the agent's options (node, control URL, join token file, intervals, healing, logging) with their defaults", async () => {
    const options = (await evalJson(`
      let opts = (${moduleExpr("{ }")}).options.services.chimera-agent;
      in { names = builtins.attrNames opts;
           defaults = builtins.mapAttrs (_: o: o.default) (removeAttrs opts [ "package" "controlUrl" ]); }`)) as {
      names: string[]
      defaults: Record<string, unknown>
    }
    expect(options.names.sort()).toEqual(
      [
        "autoHeal",
        "controlUrl",
        "driftInterval",
        "enable",
        "extraArgs",
        "failbackInterval",
        "heartbeat",
        "joinTokenFile",
        "logLevel",
        "nodeId",
        "package",
        "spreadReplicas",
      ].sort(),
    )
    expect(options.defaults).toEqual({
      enable: false,
      joinTokenFile: null,
      nodeId: "host-from-networking",
      heartbeat: 5,
      driftInterval: 30,
      failbackInterval: 300,
      spreadReplicas: false,
      autoHeal: true,
      logLevel: "info",
      extraArgs: [],
    })
  })

  test("the unit starts after the network, restarts on failure and keeps state in a 0700 directory", async () => {
    const unit = (await evalJson(`(${moduleExpr("{ }")}).config.content.systemd.services.chimera-agent`)) as Record<
      string,
      unknown
    > & { serviceConfig: Record<string, unknown> }
    expect(unit.wantedBy).toEqual(["multi-user.target"])
    // flock(1), to take NixOS's switch lock around a heal.
    expect(unit.path).toContain("/nix/store/util-linux")
    expect(unit.after).toContain("network-online.target")
    expect(unit.wants).toContain("network-online.target")
    expect(unit.serviceConfig).toMatchObject({
      Restart: "on-failure",
      StateDirectory: "chimera-agent",
      StateDirectoryMode: "0700",
      PrivateTmp: true,
      ProtectHome: true,
      NoNewPrivileges: true,
      LoadCredential: [],
    })
    // Root work on /nix and /etc (nix-env, activation): these would break healing.
    for (const key of ["User", "DynamicUser", "ProtectSystem", "RestrictNamespaces", "MemoryDenyWriteExecute"])
      expect(unit.serviceConfig).not.toHaveProperty(key)
    expect(unit.serviceConfig.ExecStart).toBe(
      "/nix/store/00000000000000000000000000000000-chimera-agent/bin/chimera-agent '--node-id' 'web-1' '--control-url' 'https://cp.example' '--heartbeat' '5' '--drift-interval' '30' '--failback-interval' '300' '--log-level' 'info' --state-dir %S/chimera-agent",
    )
  })

  test("controlUrl takes a list of replicas, handed to the agent comma-separated; one string still works", async () => {
    const unit = (await evalJson(
      `(${moduleExpr(`{ controlUrl = [ "https://cp-a.example" "https://cp-b.example" ]; }`)}).config.content.systemd.services.chimera-agent`,
    )) as { serviceConfig: { ExecStart: string } }
    expect(unit.serviceConfig.ExecStart).toContain("'--control-url' 'https://cp-a.example,https://cp-b.example'")
    const option = (await evalJson(`(${moduleExpr("{ }")}).options.services.chimera-agent.controlUrl.type`)) as string
    expect(option).toBe("str or non-empty list of str")
  })

  test("spreadReplicas hands the agent --spread-replicas; off, the list's order stands", async () => {
    const execStart = async (settings: string) =>
      (
        (await evalJson(`(${moduleExpr(settings)}).config.content.systemd.services.chimera-agent`)) as {
          serviceConfig: { ExecStart: string }
        }
      ).serviceConfig.ExecStart
    const list = `controlUrl = [ "https://cp-a.example" "https://cp-b.example" ];`
    expect(await execStart(`{ ${list} spreadReplicas = true; }`)).toContain("'--spread-replicas'")
    expect(await execStart(`{ ${list} }`)).not.toContain("--spread-replicas")
  })

  test("the join token reaches the agent as a systemd credential, never on its command line", async () => {
    const unit = (await evalJson(
      `(${moduleExpr(`{ joinTokenFile = "/run/secrets/chimera-join"; autoHeal = false; nodeId = "50%-off"; }`)}).config.content.systemd.services.chimera-agent`,
    )) as { serviceConfig: { ExecStart: string; LoadCredential: string[] } }
    expect(unit.serviceConfig.LoadCredential).toEqual(["join-token:/run/secrets/chimera-join"])
    expect(unit.serviceConfig.ExecStart).toContain("--join-token-file %d/join-token")
    expect(unit.serviceConfig.ExecStart).not.toContain("/run/secrets/chimera-join")
    expect(unit.serviceConfig.ExecStart).toContain("'--no-auto-heal'")
    // A `%` in a value must not be read by systemd as a specifier.
    expect(unit.serviceConfig.ExecStart).toContain("'--node-id' '50%%-off'")
  })

  test("a join token file in the Nix store or a relative path fails an assertion", async () => {
    const failing = async (file: string) =>
      (await evalJson(`
        map (a: a.message) (builtins.filter (a: !a.assertion)
          (${moduleExpr(`{ joinTokenFile = ${JSON.stringify(file)}; }`)}).config.content.assertions)`)) as string[]
    expect(await failing("/run/secrets/join")).toEqual([])
    expect(await failing("/nix/store/00000000000000000000000000000000-token")).toEqual([
      "services.chimera-agent.joinTokenFile must not be in the Nix store, which every user can read",
    ])
    expect(await failing("secrets/join")).toEqual(["services.chimera-agent.joinTokenFile must be an absolute path"])
  })
})

describe("package.nix and flake.nix", () => {
  const stdenvExpr = `{ mkDerivation = attrs: attrs; buildPlatform.canExecute = _: true; hostPlatform = { }; }`
  const packageExpr = (binary: string) => `
    import ${JSON.stringify(join(NIX_DIR, "package.nix"))} {
      lib = ${STUB_LIB};
      stdenvNoCC = ${stdenvExpr};
      autoPatchelfHook = "autoPatchelfHook";
      agentBinary = ${binary};
    }`

  test("the package keeps the Bun payload (no strip), patches the interpreter and names its program", async () => {
    const pkg = (await evalJson(`
      let p = ${packageExpr(JSON.stringify(join(NIX_DIR, "package.nix")))};
      in { inherit (p) pname version dontStrip nativeBuildInputs doInstallCheck; inherit (p.meta) mainProgram platforms; }`)) as Record<
      string,
      unknown
    >
    const { version } = (await Bun.file(join(NIX_DIR, "..", "package.json")).json()) as { version: string }
    expect(pkg).toEqual({
      pname: "chimera-agent",
      version,
      dontStrip: true,
      nativeBuildInputs: ["autoPatchelfHook"],
      doInstallCheck: true,
      mainProgram: "chimera-agent",
      platforms: ["x86_64-linux", "aarch64-linux"],
    })
  })

  test("without a compiled agent the package says to run `bun run build`", async () => {
    await expect(evalJson(`(${packageExpr(`"/nonexistent/chimera-agent"`)}).src`)).rejects.toThrow(
      "/nonexistent/chimera-agent does not exist; run `bun run build`",
    )
  })

  test("the flake takes nixpkgs and offers the package, the module and an overlay", async () => {
    const flake = (await evalJson(`
      let
        flake = import ${JSON.stringify(join(NIX_DIR, "flake.nix"))};
        lib = ${STUB_LIB};
        nixpkgs = {
          inherit lib;
          legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
            (system: { callPackage = path: _: { built = baseNameOf path; inherit system; }; });
        };
        self = flake.outputs { inherit self nixpkgs; };
      in {
        nixpkgs = flake.inputs.nixpkgs.url;
        packages = self.packages;
        modules = builtins.attrNames self.nixosModules;
        overlay = builtins.isFunction self.overlays.default;
      }`)) as Record<string, unknown>
    expect(flake).toEqual({
      nixpkgs: "github:NixOS/nixpkgs/nixos-unstable",
      packages: {
        "x86_64-linux": {
          "chimera-agent": { built: "package.nix", system: "x86_64-linux" },
          default: { built: "package.nix", system: "x86_64-linux" },
        },
        "aarch64-linux": {
          "chimera-agent": { built: "package.nix", system: "aarch64-linux" },
          default: { built: "package.nix", system: "aarch64-linux" },
        },
      },
      modules: ["chimera-agent", "default"],
      overlay: true,
    })
  })
})
