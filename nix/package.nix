# The Chimera node agent as a Nix package: the single executable `bun run build` compiles from
# agent/main.ts (dist/chimera-agent: the Bun runtime with the bundled agent inside it).
#
# Why package a prebuilt file instead of building from source in Nix: the agent's dependencies come
# from npm, and a fixed-output npm/bun dependency derivation needs nixpkgs' fetchers and network access
# at build time. Until a release pipeline publishes the binary with a hash (then `agentBinary` becomes a
# `fetchurl`), this packages the file built by `bun run build` in the same checkout.
#
#   nix-build -E 'with import <nixpkgs> {}; callPackage ./nix/package.nix {}'
#   callPackage ./nix/package.nix { agentBinary = /path/to/chimera-agent; }
{
  lib,
  stdenvNoCC,
  autoPatchelfHook,
  agentBinary ? ../dist/chimera-agent,
  version ? (lib.importJSON ../package.json).version,
}:

stdenvNoCC.mkDerivation {
  pname = "chimera-agent";
  inherit version;

  src =
    if builtins.pathExists agentBinary then
      agentBinary
    else
      throw "chimera-agent: ${toString agentBinary} does not exist; run `bun run build` in the repository first";

  dontUnpack = true;
  dontConfigure = true;
  dontBuild = true;

  # Sets the ELF interpreter (and the RPATH) to this system's glibc: the binary Bun writes asks for
  # /lib64/ld-linux-x86-64.so.2, which NixOS does not have. It needs only libc, libm, libdl, libpthread.
  nativeBuildInputs = [ autoPatchelfHook ];

  # The agent's code lives in a `.bun` section of the executable; `strip` may drop or move it and leave
  # a bare Bun runtime behind. Bun's binary carries no debug info worth stripping anyway.
  dontStrip = true;

  installPhase = ''
    runHook preInstall
    install -Dm755 "$src" "$out/bin/chimera-agent"
    runHook postInstall
  '';

  # patchelf rewrites program headers; some patchelf/Bun combinations have produced binaries that
  # start as plain `bun` or segfault. Running the agent's --help proves the bundled code survived.
  doInstallCheck = stdenvNoCC.buildPlatform.canExecute stdenvNoCC.hostPlatform;
  installCheckPhase = ''
    runHook preInstallCheck
    "$out/bin/chimera-agent" --help > help.txt 2>&1 || true
    if ! grep -q -- "--node-id" help.txt; then
      echo "chimera-agent --help did not print the agent's flags; the compiled payload did not survive patching:" >&2
      head -n 20 help.txt >&2
      exit 1
    fi
    runHook postInstallCheck
  '';

  meta = {
    description = "Chimera node agent: detects drift of a NixOS system from its desired closure and heals it";
    longDescription = ''
      Heartbeats to a Chimera control plane, compares the desired closure with the system profile,
      /run/current-system and /run/booted-system, and activates the desired closure when they differ.
    '';
    license = lib.licenses.mit;
    mainProgram = "chimera-agent";
    platforms = lib.platforms.linux;
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}
