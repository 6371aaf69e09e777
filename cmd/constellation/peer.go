package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rads-lang/constellation/node"
	"github.com/rads-lang/constellation/sandbox"
)

func newPeerCmd(g *globals) *cobra.Command {
	var (
		flags      node.Config
		labels     string
		configFile string
		// --metrics-retention and --metrics-interval take Prometheus durations (30d).
		metricsRetention, metricsInterval string
	)
	c := &cobra.Command{
		Use:     "peer",
		Aliases: []string{"init"},
		Short:   "Run a node in the foreground (joins or starts a cluster)",
		Long: `Run a constellation node in the foreground until SIGINT or SIGTERM, which leave the
cluster gracefully (peers see the node as 'left', not 'dead').

With no flags the node starts a single-node cluster named "default" on 0.0.0.0:7946 (QUIC on
UDP and TCP on the same port) and finds peers of the same cluster on the LAN by mDNS.

Settings come from flags, then the --config file (YAML, same keys with '_' for '-'), then the
defaults. The cluster key can also come from CONSTELLATION_CLUSTER_KEY.`,
		Example: `  constellation peer
  constellation peer --cluster production --node node-1 --bind 192.168.1.10 \
      --advertise 203.0.113.10 --join 192.168.1.11:7946 --labels region=us-east,type=database
  CONSTELLATION_CLUSTER_KEY=s3cret constellation peer --join /ip4/192.168.1.11/udp/7946/quic-v1/p2p/12D3KooW...`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var cfg node.Config
			if configFile == "" {
				configFile = os.Getenv("CONSTELLATION_CONFIG")
			}
			if configFile != "" {
				fc, err := node.LoadConfigFile(configFile)
				if err != nil {
					return err
				}
				cfg = fc
			}
			if k := os.Getenv("CONSTELLATION_CLUSTER_KEY"); k != "" {
				cfg.ClusterKey = k
			}
			set := map[string]bool{}
			c.Flags().Visit(func(f *pflag.Flag) { set[f.Name] = true })
			if c.Flags().Changed("labels") {
				m, err := node.ParseLabels(labels)
				if err != nil {
					return err
				}
				flags.Labels = m
			}
			if err := parseMonitorFlags(&flags, metricsRetention, metricsInterval); err != nil {
				return err
			}
			flags.DataDir, flags.APIToken = g.dataDir, g.token
			set["data-dir"], set["api-token"] = g.dataDir != "", g.token != ""
			cfg.Merge(flags, set)
			cfg.Defaults()
			if err := cfg.Validate(); err != nil {
				return err
			}
			return runPeer(cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file with the same keys as the flags (default $CONSTELLATION_CONFIG)")
	f.StringVar(&flags.Cluster, "cluster", "default", "cluster name; only nodes of the same name join")
	f.StringVar(&flags.Node, "node", "", "this node's name (default the hostname)")
	f.StringVar(&flags.Bind, "bind", "0.0.0.0:7946", "HOST[:PORT] to listen on (QUIC on UDP, TCP fallback, same port)")
	f.StringVar(&flags.Advertise, "advertise", "", "HOST[:PORT] to announce to peers (NAT, several interfaces)")
	f.StringArrayVar(&flags.Join, "join", nil, "peer to join: HOST:PORT, HOST, or a multiaddr like /ip4/1.2.3.4/udp/7946/quic-v1/p2p/ID (repeatable)")
	f.StringVar(&flags.ClusterKey, "cluster-key", "", "shared secret peers must prove to be admitted (default $CONSTELLATION_CLUSTER_KEY; empty: open cluster)")
	f.StringVar(&labels, "labels", "", "node labels k=v,k2=v2 (e.g. region=us-east,type=database)")
	f.BoolVar(&flags.NoMDNS, "no-mdns", false, "turn off LAN discovery by mDNS")
	f.BoolVar(&flags.NoPortMap, "no-port-map", false, "do not ask the router for a port mapping (UPnP, NAT-PMP)")
	f.StringVar(&flags.APIListen, "api-listen", "", "also serve the local API on HOST:PORT over TLS (bearer token in <data-dir>/api.token, certificate fingerprint in <data-dir>/api.fingerprint)")
	f.BoolVar(&flags.MeshExecChecks, "mesh-exec-checks", false, "allow the mesh's exec:CMD health checks on this node (they run as the node's user; off by default)")
	f.StringVar(&flags.MeshListen, "mesh-listen", "", "the service mesh's loopback entry point for instances, 127.0.0.1:PORT (default a free port; off: none)")
	f.StringVar(&flags.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&flags.Liveness, "liveness", "lan", "failure detector profile: lan (one network, detects in ~3s), wan (nodes behind slow links: round trips below 2.5s are not suspected, detects in ~15s) or local (one host); use the same on every node")
	f.Float64Var(&flags.ReserveCPUPercent, "reserve-cpu-percent", 0, "CPU kept for the OS and the node, in cpu_percent units (100 = one core; default 10 per core up to 100; negative: none)")
	f.Int64Var(&flags.ReserveRAMMB, "reserve-ram-mb", 0, "RAM in MiB kept for the OS and the node (default 512; negative: none)")
	f.Int64Var(&flags.ReserveDiskMB, "reserve-disk-mb", 0, "disk in MiB kept free on the data dir's filesystem (default 1024; negative: none)")
	f.Float64Var(&flags.DefaultCPUPercent, "default-cpu-percent", 0, "cpu_percent of an instance that asks for none (default: none, CPU is shared fairly; a default also reserves it)")
	f.Int64Var(&flags.DefaultRAMMB, "default-ram-mb", 0, "ram_mb of an instance that asks for none (default 512; negative: unlimited)")
	f.Int64Var(&flags.DefaultPIDs, "default-pids", 0, "pids of an instance that asks for none (default 512; negative: unlimited)")
	f.Int64Var(&flags.DefaultDiskMB, "default-disk-mb", 0, "disk_mb of an instance that asks for none (default: none)")
	f.BoolVar(&flags.AllowHostRoot, "allow-host-root", false, "let instances run as host root without a user namespace (create --host-root); off by default")
	f.Float64Var(&flags.MaxCPUPercent, "max-cpu-percent", 0, "most cpu_percent an instance may ask on this node (0: no maximum)")
	f.Int64Var(&flags.MaxRAMMB, "max-ram-mb", 0, "most ram_mb an instance may ask on this node (0: no maximum)")
	f.Int64Var(&flags.MaxPIDs, "max-pids", 0, "most pids an instance may ask on this node (0: no maximum)")
	f.Int64Var(&flags.MaxDiskMB, "max-disk-mb", 0, "most disk_mb an instance may ask on this node (0: no maximum)")
	f.StringArrayVar(&flags.CodeRoots, "code-root", nil, "directory instances' --code may name, besides <data-dir>/code (repeatable)")
	f.StringVar(&flags.DiskQuota, "disk-quota", "auto", "how disk_mb is enforced: auto, xfs, ext4, poll or none")
	f.StringVar(&flags.DefaultNetwork, "default-network", sandbox.NetworkBridge, "network of an instance created without --network: bridge, none or host")
	f.StringVar(&flags.Bridge, "bridge", sandbox.DefaultBridge, "name of the node bridge bridge-mode instances are on (one per node)")
	f.StringVar(&flags.BridgeSubnet, "bridge-subnet", sandbox.DefaultBridgeSubnet, "IPv4 subnet of the node bridge (must not overlap the host's routes)")
	addLogsTracesFlags(f, &flags)
	f.Int64Var(&flags.DFS.CacheMB, "dfs-cache-mb", 0, "DFS: MiB of blocks kept of files this node does not hold, an LRU (default 1024; negative: none)")
	f.Int64Var(&flags.DFS.CapacityMB, "dfs-capacity-mb", 0, "DFS: MiB the block store may use (default: the disk's free space)")
	f.DurationVar(&flags.DFS.Grace, "dfs-grace", 0, "DFS: how long a dead holder still counts as a copy before others copy its files (default 30s)")
	addMonitorFlags(f, &flags, &metricsRetention, &metricsInterval)
	node.AddLocksFlags(f, &flags)
	// The token flag is global (client side); on peer it sets the server token.
	return c
}

func runPeer(cfg node.Config) error {
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cfg.LogLevel]
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := n.Start(ctx); err != nil {
		n.Kill()
		return err
	}
	st := n.Status()
	fmt.Fprintf(os.Stderr, "constellation node %s (%s) in cluster %q\n  listening: %s\n  api: %s\n",
		st.Name, st.ID, st.Cluster, strings.Join(st.Addresses, "\n             "), n.SocketPath())
	if n.APIAddr != "" {
		fmt.Fprintf(os.Stderr, "  api (tcp, tls): %s (token in %s/api.token)\n  api fingerprint: %s (clients pin it: --api-fingerprint, or %s/api.fingerprint)\n",
			n.APIAddr, cfg.DataDir, n.APIFingerprint, cfg.DataDir)
	}
	select {
	case <-ctx.Done():
	case <-n.Done():
	}
	stop() // a second signal kills the process the default way
	log.Info("leaving the cluster")
	return n.Close()
}
