// The command registry's entries for Nix and NixOS tools (command-registry.ts holds the rest). Their
// risks turn on what Nix makes: a `result` link or a profile is a link to a store path, which may
// itself be a link anywhere, so one left in a known place would let a later medium write land wherever
// it points (hence nix-build only with --no-out-link, and profiles only under /nix/var/nix/profiles).
// No entry lists `--option`: it can set a build hook that runs as root.
import { entry as e, HIGH, READ, type RegistryEntry } from "./command-entry.ts"

export const NIX_COMMANDS: Record<string, RegistryEntry> = {
  "nixos-option": READ("nix.system", "Show a NixOS option's value", { short: "r", long: "--recursive --show-trace" }),
  "nix-instantiate": e("nix.build", "Evaluate a Nix expression", "medium", {
    short: "A:E",
    long: "--eval --strict --json --xml --parse --expr --attr: --show-trace --read-write-mode --find-file",
  }),
  "nix-copy-closure": e("nix.store", "Copy a closure to or from another machine", "medium", {
    short: "sv",
    long: "--to --from --gzip --include-outputs --use-substitutes",
  }),
  "nixos-rebuild": e("nix.system", "Build and activate a NixOS configuration", "medium", {
    short: "I:j:p:",
    long: "--flake: --show-trace --fast --upgrade --rollback --install-bootloader --specialisation: --profile-name: --keep-going --max-jobs: --no-build-nix --target-host: --build-host: --use-remote-sudo",
    bare: "low",
    subcommands: {
      // `build` leaves a `result` link whose target the configuration chooses; dry-build does not.
      build: "high",
      "dry-build": "low",
      // It runs the configuration's dry-activation scripts, as root, as switch runs its activation.
      "dry-activate": "medium",
      "list-generations": "low",
      switch: "medium",
      boot: "medium",
      test: "medium",
    },
  }),
  "nixos-version": READ("nix.system", "Print the NixOS version", { long: "--json --hash --revision" }),
  // No --option (it can set a build hook that runs as root) and no unsafe-evaluation settings.
  nix: e("nix", "The Nix command (verbs not listed are high)", "high", {
    short: "rhLSsvf:",
    long: "--json --raw --recursive --derivation --impure --print-build-logs --show-trace --no-link --expr --file: --offline --closure-size --size --human-readable --all --verbose --quiet --dry-run --extra-experimental-features: --apply: --read-only --pretty?",
    bare: "low",
    subcommands: {
      eval: "low",
      "path-info": "low",
      "why-depends": "low",
      search: "low",
      log: "low",
      "show-derivation": "low",
      hash: "low",
      build: "medium",
    },
  }),
  "nix-store": e("nix.store", "Manipulate or query the Nix store", "medium", {
    short: "qRrld",
    long: "--query --references --referrers --referrers-closure --requisites --tree --graph --deriver --outputs --size --closure-size --hash --roots --valid-derivers --include-outputs --binding: --verify --check-contents --print-env --realise --read-log --dump --export --verify-path --optimise --delete --gc --print-live --print-dead",
    riskyFlags: [
      { pattern: /^(-q.*|--query|--verify|--print-env|--read-log|-l|--dump|--export|--verify-path)$/, risk: "low" },
      { pattern: /^(--delete|--gc)$/, risk: "high" },
    ],
  }),
  // A profile is a chain of links ending in a store path (which may itself be a link anywhere): one
  // made in /tmp would let a later medium write there land wherever the chosen path points.
  "nix-env": e("nix.profile", "Manipulate Nix profiles (under /nix/var/nix/profiles)", "medium", {
    profiles: ["-p", "--profile"],
    short: "qiuePasAG:p:f:",
    long: "--query --list-generations --profile: --installed --available --attr-path --out-path --description --json --install --upgrade --uninstall --set --rollback --switch-generation: --delete-generations --file: --attr",
    riskyFlags: [
      { pattern: /^(-q.*|--query|--list-generations)$/, risk: "low" },
      { pattern: /^--delete-generations$/, risk: "high" },
    ],
  }),
  // No --option, --arg or --argstr (it would need its two values read).
  // Only with --no-out-link: the `result` link points wherever the expression's output does (a store
  // path can be a link to /etc/shadow), and a later medium write could follow it.
  "nix-build": e("nix.build", "Build a Nix expression (with --no-out-link)", "medium", {
    short: "A:EkI:j:",
    long: "--attr: --expr --no-out-link --dry-run --show-trace --keep-going --cores: --max-jobs: --check",
    needs: ["--no-out-link"],
  }),
  "nix-shell": HIGH("nix.build", "Start a shell with a derivation's environment (runs --run text)"),
  "nix-collect-garbage": HIGH("nix.store", "Delete unreachable store paths"),
  "nix-channel": e("nix.channels", "Manage channels", "medium", { long: "--list --update --add --remove --rollback" }),
}
