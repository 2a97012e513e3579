# Chimera for NixOS flakes: the compiled node agent as a package, the services.chimera-agent module,
# and an overlay. The package wraps dist/chimera-agent (see package.nix), which is built by `bun run
# build` and is not tracked by git, so point Nix at the working tree rather than the git index:
#
#   bun run build && nix build 'path:.?dir=nix#chimera-agent'
#
# In a system flake:
#   inputs.chimera.url = "path:/src/chimera?dir=nix";
#   modules = [ chimera.nixosModules.default { services.chimera-agent = { enable = true; controlUrl = "…"; }; } ];
{
  description = "Chimera: drift detection and self-healing for NixOS fleets (node agent and NixOS module)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # The agent binary is compiled for the machine that ran `bun run build`
      # (`bun scripts/build.ts --target=bun-linux-arm64` for the other one).
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { chimera-agent = final.callPackage ./package.nix { }; };

      packages = forAllSystems (pkgs: rec {
        chimera-agent = pkgs.callPackage ./package.nix { };
        default = chimera-agent;
      });

      nixosModules.chimera-agent =
        { lib, pkgs, ... }:
        {
          imports = [ ./module.nix ];
          services.chimera-agent.package =
            lib.mkDefault
              self.packages.${pkgs.stdenv.hostPlatform.system}.chimera-agent;
        };
      nixosModules.default = self.nixosModules.chimera-agent;
    };
}
