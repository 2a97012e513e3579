# A stand-in NixOS system for tests, buildable with no nixpkgs. Its bin/switch-to-configuration does to
# the links what NixOS's does (`switch` and `test` point /run/current-system at the closure; `boot` only
# records it), so drift detection, healing and rollback run against the real Nix store and profiles.
# `failSwitch = true` gives a system whose activation fails, as a broken configuration would;
# `slowSwitch = N` one whose activation takes N seconds and talks on stderr meanwhile, as NixOS's does.
# It wraps the switch in a script added after the build's own text, which stays as it is without it,
# so every other system keeps its store path.
{ generation ? "1", tag ? "chimera", failSwitch ? false, slowSwitch ? 0 }:
let
  slow = if slowSwitch > 0 then ''
    mv $out/bin/switch-to-configuration $out/bin/.switch-to-configuration
    cat > $out/bin/switch-to-configuration <<SCRIPT
    #!/bin/sh
    echo "activating the configuration..." >&2
    sleep ${toString slowSwitch}
    echo "setting up /etc..." >&2
    exec $out/bin/.switch-to-configuration "\$@"
    SCRIPT
    chmod +x $out/bin/switch-to-configuration
  '' else "";
in
derivation {
  name = "${tag}-test-system-${generation}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit generation;
  failSwitch = if failSwitch then "1" else "";
  args = [ "-c" (''
    set -e
    mkdir -p $out/bin
    echo "$generation" > $out/generation
    cat > $out/bin/switch-to-configuration <<SCRIPT
    #!/bin/sh
    # usage: switch-to-configuration switch|boot|test|dry-activate
    set -e
    action="\$1"
    case "\$action" in
      switch|test|boot|dry-activate) ;;
      *) echo "usage: \$0 switch|boot|test|dry-activate" >&2; exit 1 ;;
    esac
    if [ -n "$failSwitch" ]; then echo "activation of generation $generation failed: unit chimera-test.service failed" >&2; exit 4; fi
    if [ "\$action" = switch ] || [ "\$action" = test ]; then ln -sfn $out /run/current-system; fi
    echo "activated generation $generation (\$action)"
    SCRIPT
    chmod +x $out/bin/switch-to-configuration
  '' + slow) ];
}
