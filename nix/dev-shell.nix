# A development shell for `chimera run`, buildable with no nixpkgs: nix-shell takes its environment
# from a plain derivation. CHIMERA_SHELL=1 marks a command that ran inside it, and its input
# `chimera-hello` (built on first use, as nix-shell builds a shell's inputs) is on PATH.
#   chimera run --config nix/dev-shell.nix 'echo $CHIMERA_SHELL; chimera-hello'
# Without stdenv, nix-shell does not add inputs to PATH and a derivation's PATH replaces the caller's,
# so PATH here names the tool and the host's usual directories.
let
  hello = derivation {
    name = "chimera-hello";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      /bin/mkdir -p $out/bin
      printf '#!/bin/sh\necho "hello from the chimera dev shell"\n' > $out/bin/chimera-hello
      /bin/chmod +x $out/bin/chimera-hello
    '' ];
  };
in
derivation {
  name = "chimera-dev-shell";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo 'chimera dev shell: use it with nix-shell' > $out" ];
  CHIMERA_SHELL = "1";
  PATH = "${hello}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}
