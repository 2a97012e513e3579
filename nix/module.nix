# services.chimera-agent: runs the Chimera node agent on a NixOS machine. The agent heartbeats to the
# control plane, watches the system profile and /run/current-system for drift, and heals the node by
# `nix-env -p /nix/var/nix/profiles/system --set <closure>` and `<closure>/bin/switch-to-configuration
# switch`. That is root's work on the whole system, which bounds how far the unit can be sandboxed: each
# hardening setting below says why it is there, and the settings left out say why they cannot be.
#
#   services.chimera-agent = {
#     enable = true;
#     controlUrl = "https://chimera.example.net"; # or a list of replicas, tried in turn on failure
#     joinTokenFile = "/run/secrets/chimera-join-token"; # only read until the node has enrolled
#   };
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.chimera-agent;
  # One URL or a list of replicas; the agent takes them comma-separated and sticks to one at a time.
  controlUrls = if builtins.isList cfg.controlUrl then cfg.controlUrl else [ cfg.controlUrl ];
  inherit (lib) mkOption types;

  # systemd expands `%` specifiers and `$VAR` in ExecStart even inside quotes; user values must not be.
  escape = arg: lib.escapeShellArg (builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (toString arg));

  args =
    map escape (
      [
        "--node-id"
        cfg.nodeId
        "--control-url"
        (lib.concatStringsSep "," controlUrls)
        "--heartbeat"
        cfg.heartbeat
        "--drift-interval"
        cfg.driftInterval
        "--failback-interval"
        cfg.failbackInterval
        "--log-level"
        cfg.logLevel
      ]
      ++ lib.optional (!cfg.autoHeal) "--no-auto-heal"
      ++ lib.optional cfg.spreadReplicas "--spread-replicas"
      ++ cfg.extraArgs
    )
    # `%S` is the state root (/var/lib) and `%d` the credentials directory: specifiers, left unescaped.
    ++ [
      "--state-dir"
      "%S/chimera-agent"
    ]
    ++ lib.optionals (cfg.joinTokenFile != null) [
      "--join-token-file"
      "%d/join-token"
    ];
in
{
  options.services.chimera-agent = {
    enable = lib.mkEnableOption "the Chimera node agent (drift detection and self-healing)";

    package = mkOption {
      type = types.package;
      default = pkgs.chimera-agent or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.chimera-agent";
      description = "The chimera-agent package (the compiled agent; see nix/package.nix).";
    };

    controlUrl = mkOption {
      type = types.either types.str (types.nonEmptyListOf types.str);
      example = [
        "https://chimera-a.example.net"
        "https://chimera-b.example.net"
      ];
      description = ''
        URL of the Chimera control plane the agent reports to, or a list of its replicas. The agent sends
        everything to one replica and moves to the next on a connection failure or a 5xx answer; a URL
        must not contain a comma. The order is a preference: once moved off the first, the agent goes back
        to it when it is ready again (failbackInterval).
      '';
    };

    failbackInterval = mkOption {
      type = types.ints.between 0 86400;
      default = 300;
      description = ''
        With several control plane URLs: once the agent has moved off the first, how often (seconds, with
        jitter) it asks the first whether it is ready again (`/api/health`), going back when it is. 0: the
        agent stays where a failure moved it.
      '';
    };

    spreadReplicas = mkOption {
      type = types.bool;
      default = false;
      description = ''
        With several control plane URLs: take them in this node's own order, drawn from its node id,
        instead of as listed, so that a fleet given one list spreads evenly over the replicas. Each node
        keeps its order (it fails back to its own first replica), and a replica added to the list
        becomes the first of only the share of nodes that move to it.
      '';
    };

    joinTokenFile = mkOption {
      # A string, not a path: a path literal would be copied into the world-readable Nix store.
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/chimera-join-token";
      description = ''
        File holding a join token (`chimera nodes join-token`), used once to enroll; afterwards the agent
        authenticates with the per-node credential it keeps in /var/lib/chimera-agent. The file is handed
        to the service with systemd's LoadCredential, so it may be readable by root only; its content never
        appears on the command line or in the Nix store.
      '';
    };

    nodeId = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "Unique identifier of this node in the fleet.";
    };

    heartbeat = mkOption {
      type = types.ints.positive;
      default = 5;
      description = "Seconds between heartbeats.";
    };

    driftInterval = mkOption {
      type = types.ints.positive;
      default = 30;
      description = "Seconds between drift polls; the links are also watched, so drift is seen at once.";
    };

    autoHeal = mkOption {
      type = types.bool;
      default = true;
      description = "Activate the desired closure when drift is detected; when false, only report it.";
    };

    logLevel = mkOption {
      type = types.enum [
        "debug"
        "info"
        "warning"
        "error"
      ];
      default = "info";
      description = "Least severe level written to the journal.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--booted-system" "/run/booted-system" ];
      description = "Further command-line arguments for chimera-agent.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.joinTokenFile == null || lib.hasPrefix "/" cfg.joinTokenFile;
        message = "services.chimera-agent.joinTokenFile must be an absolute path";
      }
      {
        assertion = cfg.joinTokenFile == null || !(lib.hasPrefix builtins.storeDir cfg.joinTokenFile);
        message = "services.chimera-agent.joinTokenFile must not be in the Nix store, which every user can read";
      }
    ];

    systemd.services.chimera-agent = {
      description = "Chimera node agent";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      wantedBy = [ "multi-user.target" ];

      # The agent runs nix-env and nix-store, activates through systemd-run, and takes NixOS's switch lock
      # with util-linux's flock, so a heal and a `nixos-rebuild switch` by hand never run together.
      path = [
        config.nix.package
        config.systemd.package
        pkgs.util-linux
      ];

      # A heal runs switch-to-configuration in a transient unit (`systemd-run --wait`), outside this
      # unit's cgroup. So when a new generation changes this unit, switch-to-configuration may restart the
      # agent without killing the activation it started; the restarted agent reads the links again and
      # reports the result. restartIfChanged therefore stays true (an upgraded agent takes effect on the
      # switch that delivers it); stopIfChanged = false restarts it after the new system is in place
      # instead of stopping it before activation, so the node goes unwatched for the shortest time.
      restartIfChanged = true;
      stopIfChanged = false;

      # Keep retrying: a node whose control plane is down for hours must come back by itself.
      startLimitIntervalSec = 0;

      environment = {
        # nix-store --realise keeps its binary-cache index in $XDG_CACHE_HOME; HOME is hidden below.
        XDG_CACHE_HOME = "%C/chimera-agent";
      };

      serviceConfig = {
        Type = "exec";
        ExecStart = "${lib.getExe cfg.package} ${lib.concatStringsSep " " args}";
        Restart = "on-failure";
        RestartSec = "5s";
        # SIGTERM stops the agent cleanly (it flushes its spool); an activation it started lives in its
        # own transient unit, so stopping this one does not interrupt it.
        TimeoutStopSec = "30s";

        # Root, deliberately: nix-env must write /nix/var/nix/profiles, nix-store must write /nix/store
        # (remounting the read-only store writable in a private mount namespace needs CAP_SYS_ADMIN), and
        # activation is root's. For the same reasons there is no User=, no DynamicUser=, no
        # CapabilityBoundingSet, no ProtectSystem=strict (it would make /nix and /etc read-only), no
        # RestrictNamespaces (Nix unshares a mount namespace to write the store) and no PrivateDevices
        # (builds the agent triggers may need /dev/kvm or /dev/fuse).
        StateDirectory = "chimera-agent";
        StateDirectoryMode = "0700"; # holds the node credential
        CacheDirectory = "chimera-agent";
        CacheDirectoryMode = "0700";
        LoadCredential = lib.optional (cfg.joinTokenFile != null) "join-token:${cfg.joinTokenFile}";

        # A private /tmp: nothing the agent or Nix writes there is shared with other services, and no
        # other service can plant files for it. Activation runs in its own unit and keeps the real /tmp.
        PrivateTmp = true;
        # The agent has no business in /home or /root. Nix only reads user config from $HOME (absent is
        # fine) and writes its cache to XDG_CACHE_HOME, which points at the cache directory above.
        ProtectHome = true;
        # The agent is already root and never needs a setuid binary; systemd-run asks PID 1 over its
        # socket to start the activation unit, which does not inherit this flag.
        NoNewPrivileges = true;
        # Nothing the agent or Nix does loads kernel modules, reads the kernel log, or needs these.
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        RestrictRealtime = true;
        LockPersonality = true;
        # Nix never creates setuid/setgid files (it clears those bits in the store).
        RestrictSUIDSGID = true;
        # HTTP(S) to the control plane, Unix sockets for systemd and the Nix daemon, netlink for
        # interface addresses in the heartbeat.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];
        # MemoryDenyWriteExecute is left out: Bun's JavaScriptCore JIT needs writable executable memory.
      };
    };
  };
}
