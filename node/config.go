package node

import (
	"bytes"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/p2p/liveness"
	"gopkg.in/yaml.v3"
)

// DefaultPort is the port a node listens on when --bind names no port: QUIC on UDP and TCP
// as fallback, both on the same number (Serf's and memberlist's traditional port).
const DefaultPort = 7946

// Config is everything `constellation peer` needs. Fields carry their YAML keys, which are
// also the flag names (with '-' for '_'). Zero values mean "use the default" (see Defaults).
type Config struct {
	// Cluster is the cluster's name. Nodes only admit peers of the same name. Default "default".
	Cluster string `yaml:"cluster"`
	// Node is this node's human name, unique in the cluster by convention. Default: hostname.
	Node string `yaml:"node"`
	// Bind is HOST[:PORT] to listen on; QUIC (UDP) and TCP share the port. Default 0.0.0.0:7946.
	Bind string `yaml:"bind"`
	// Advertise is HOST[:PORT] announced to peers instead of the bound addresses, for NATs
	// and hosts with several interfaces. Default: the bound interface addresses.
	Advertise string `yaml:"advertise"`
	// Join lists peers to join: "host:port", "host" (port 7946) or full multiaddrs
	// (/ip4/1.2.3.4/udp/7946/quic-v1/p2p/12D3...). Unreachable peers are retried with backoff.
	Join []string `yaml:"join"`
	// ClusterKey is the shared secret a peer must prove knowledge of to be admitted. Empty
	// means an open cluster, which only admits peers that have no key either. The environment
	// variable CONSTELLATION_CLUSTER_KEY sets it too (a flag wins over it).
	ClusterKey string `yaml:"cluster_key"`
	// Labels are free key=value attributes of this node (region, type, ...) used by
	// placement constraints.
	Labels map[string]string `yaml:"labels"`
	// DataDir holds all state of the node: identity key, replicated state, API socket.
	// Default: $CONSTELLATION_DATA_DIR, else /var/lib/constellation for root, else
	// $XDG_DATA_HOME/constellation (~/.local/share/constellation).
	DataDir string `yaml:"data_dir"`
	// DFS configures the distributed file system (config_dfs.go).
	DFS DFSConfig `yaml:"dfs"`
	// Locks configures the lock service (config_locks.go).
	Locks LocksConfig `yaml:"locks"`
	// NoMDNS turns off zero-config LAN discovery by multicast DNS.
	NoMDNS bool `yaml:"no_mdns"`
	// NoPortMap turns off UPnP/NAT-PMP port mapping on the router (on by default).
	NoPortMap bool `yaml:"no_port_map"`
	// APIListen optionally serves the local API on a TCP address (e.g. 127.0.0.1:7947) in
	// addition to the Unix socket, over TLS 1.3 with a self-signed certificate generated once
	// in the data dir (api.crt, api.key; its fingerprint, which clients pin, in
	// api.fingerprint); requests then need APIToken as a bearer token.
	APIListen string `yaml:"api_listen"`
	// MeshListen is the service mesh's loopback entry point for instances
	// (CONSTELLATION_MESH; default 127.0.0.1:0, a free port; "off" disables it).
	MeshListen string `yaml:"mesh_listen"`
	// MeshExecChecks allows the mesh's exec:CMD health checks on this node (off: such a
	// registration is refused; see mesh.Config.ExecChecks).
	MeshExecChecks bool `yaml:"mesh_exec_checks"`
	// MeshTracerProvider makes the mesh's spans (nil: the node's TracerProvider, over its
	// span store; tests set an in-memory one).
	MeshTracerProvider trace.TracerProvider `yaml:"-"`
	// APIToken is the bearer token for APIListen. When APIListen is set and no token is
	// given, a random token is generated and written to <data-dir>/api.token (0600).
	APIToken string `yaml:"api_token"`
	// AuditRetention drops audit log entries older than this (default 30 days; package
	// security).
	AuditRetention time.Duration `yaml:"audit_retention"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// Liveness is the failure detector's profile (liveness.Profile): lan (default; a dead
	// node is marked dead in about 3 s), wan for nodes behind slow links (round trips
	// below 2.5 s are never suspected; detection in 13 to 18 s) or local for nodes on one host.
	// Every node of a cluster should use the same profile.
	Liveness string `yaml:"liveness"`

	// Instances (see docs/instances.md).

	// ReserveCPUPercent is CPU kept for the OS and the node itself, in cpu_percent units
	// (100 = one core): creates are admitted against the cores minus this. Default: 10 per
	// core, at most 100. A negative value means no reserve.
	ReserveCPUPercent float64 `yaml:"reserve_cpu_percent"`
	// ReserveRAMMB is memory kept for the OS and the node. Default 512; negative: none.
	ReserveRAMMB int64 `yaml:"reserve_ram_mb"`
	// ReserveDiskMB is disk (of the data dir's filesystem) kept free. Default 1024;
	// negative: none.
	ReserveDiskMB int64 `yaml:"reserve_disk_mb"`
	// CodeRoots are host directories an instance's "code" may name, besides
	// <data-dir>/code (where uploaded scripts go).
	CodeRoots []string `yaml:"code_roots"`
	// DiskQuota is how disk_mb is enforced: auto (default), xfs, ext4, poll or none (see
	// the sandbox package).
	DiskQuota string `yaml:"disk_quota"`
	// Instance networking: the mode of a create without one (bridge, the default;
	// none; host), and the node bridge's name (default c7n0) and IPv4 subnet (default
	// 10.213.0.0/16; must not overlap the host's routes; one bridge per node).
	DefaultNetwork string `yaml:"default_network"`
	Bridge         string `yaml:"bridge"`
	BridgeSubnet   string `yaml:"bridge_subnet"`
	// Default limits of an instance whose create leaves a dimension unset: cpu_percent
	// (default none: CPU is shared fairly; a default also reserves it in admission), ram_mb
	// (default 512), pids (default 512), disk_mb (default none: a disk quota costs a loop
	// image or an XFS project per instance). Negative: none.
	DefaultCPUPercent float64 `yaml:"default_cpu_percent"`
	DefaultRAMMB      int64   `yaml:"default_ram_mb"`
	DefaultPIDs       int64   `yaml:"default_pids"`
	DefaultDiskMB     int64   `yaml:"default_disk_mb"`
	// AllowHostRoot lets instances run without a user namespace (create --host-root: uid 0
	// inside is root on the host). Off by default: every instance runs in its own user
	// namespace with an unprivileged host uid range.
	AllowHostRoot bool `yaml:"allow_host_root"`
	// Maxima an instance may ask on this node (0: none).
	MaxCPUPercent float64 `yaml:"max_cpu_percent"`
	MaxRAMMB      int64   `yaml:"max_ram_mb"`
	MaxPIDs       int64   `yaml:"max_pids"`
	MaxDiskMB     int64   `yaml:"max_disk_mb"`

	// Monitoring (see docs/monitor.md; config_monitor.go has the defaults).

	// MetricsListen optionally serves GET /metrics WITHOUT authentication on HOST:PORT,
	// for Prometheus scrapers on a private network (the API serves it with the token).
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsRetention is how long the node keeps its samples (default 30 days).
	MetricsRetention time.Duration `yaml:"metrics_retention"`
	// MetricsMaxBytes bounds the metrics store on disk (0: only the retention bounds it).
	MetricsMaxBytes int64 `yaml:"metrics_max_bytes"`
	// MetricsInterval is how often the node samples its metrics (default 10s).
	MetricsInterval time.Duration `yaml:"metrics_interval"`

	// Tuning, rarely changed. Zero means the default.

	// GossipBatch is how long local state changes are batched before they are published.
	// Default 5ms: low latency, and bursts still travel as one message.
	GossipBatch time.Duration `yaml:"gossip_batch"`
	// AntiEntropyInterval is how often the node reconciles state with one random peer.
	// Default 3s: repairs lost gossip within a few seconds at a cost of one small exchange.
	AntiEntropyInterval time.Duration `yaml:"anti_entropy_interval"`
	// SnapshotInterval is how often the state store compacts its delta log into a snapshot.
	// Default 30s.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`

	// Logs and traces (see docs/logs-traces.md).
	LogsTraces `yaml:",inline"`
}

// ConfigError names a configuration field that is wrong and says what would be right.
type ConfigError struct {
	Field string // flag / YAML key
	Value string
	Want  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("node: invalid %s %q: %s", e.Field, e.Value, e.Want)
}

// Defaults fills every zero field with its documented default.
func (c *Config) Defaults() {
	c.LogsTraces.defaults()
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "node"
		}
		c.Node = h
	}
	if c.Bind == "" {
		c.Bind = "0.0.0.0:" + strconv.Itoa(DefaultPort)
	}
	if c.DataDir == "" {
		c.DataDir = api.DefaultDataDir()
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Liveness == "" {
		c.Liveness = liveness.ProfileLAN
	}
	if c.GossipBatch == 0 {
		c.GossipBatch = 5 * time.Millisecond
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = 3 * time.Second
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 30 * time.Second
	}
	c.instanceDefaults()
	c.monitorDefaults()
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
)

// Validate checks every field and returns the first problem as a *ConfigError.
func (c *Config) Validate() error {
	if err := c.LogsTraces.validate(); err != nil {
		return err
	}
	if !nameRE.MatchString(c.Cluster) {
		return &ConfigError{"cluster", c.Cluster, "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"}
	}
	if !nameRE.MatchString(c.Node) {
		return &ConfigError{"node", c.Node, "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"}
	}
	if _, _, err := splitHostPort(c.Bind); err != nil {
		return &ConfigError{"bind", c.Bind, "HOST or HOST:PORT, e.g. 0.0.0.0:7946 or [::]:7946"}
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			return &ConfigError{"advertise", c.Advertise, "HOST or HOST:PORT, e.g. 203.0.113.10:7946"}
		}
	}
	for k, v := range c.Labels {
		if !labelRE.MatchString(k) {
			return &ConfigError{"labels", k + "=" + v, "label keys are 1-63 letters, digits, '.', '_', '/' or '-'"}
		}
		if len(v) > 253 || strings.ContainsAny(v, ",=\n") {
			return &ConfigError{"labels", k + "=" + v, "label values are at most 253 characters without ',', '=' or newlines"}
		}
	}
	if c.APIListen != "" {
		if _, port, err := net.SplitHostPort(c.APIListen); err != nil || port == "" {
			return &ConfigError{"api_listen", c.APIListen, "HOST:PORT, e.g. 127.0.0.1:7947"}
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &ConfigError{"log_level", c.LogLevel, "one of debug, info, warn, error"}
	}
	if _, err := liveness.Profile(c.Liveness); err != nil {
		return &ConfigError{"liveness", c.Liveness, "one of " + strings.Join(liveness.Profiles(), ", ") +
			" (lan: one network; wan: nodes behind slow links; local: one host)"}
	}
	if c.GossipBatch < 0 || c.GossipBatch > time.Second {
		return &ConfigError{"gossip_batch", c.GossipBatch.String(), "between 0 and 1s"}
	}
	if c.AntiEntropyInterval < 100*time.Millisecond || c.AntiEntropyInterval > 10*time.Minute {
		return &ConfigError{"anti_entropy_interval", c.AntiEntropyInterval.String(), "between 100ms and 10m"}
	}
	if c.SnapshotInterval < time.Second {
		return &ConfigError{"snapshot_interval", c.SnapshotInterval.String(), "at least 1s"}
	}
	if err := c.validateMonitor(); err != nil {
		return err
	}
	return c.validateInstances()
}

// splitHostPort accepts HOST, HOST:PORT, :PORT and [V6]:PORT.
func splitHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty")
	}
	host, portStr := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, portStr = h, p
	} else if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		host = s // bare IPv6
	} else if strings.Contains(s, ":") {
		return "", 0, err
	}
	port := DefaultPort
	if portStr != "" {
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 0 || n > 65535 {
			return "", 0, fmt.Errorf("bad port %q", portStr)
		}
		port = n
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if strings.ContainsAny(host, " /") {
		return "", 0, fmt.Errorf("bad host %q", host)
	}
	return host, port, nil
}

// ParseLabels parses "k=v,k2=v2" into a map.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &ConfigError{"labels", kv, "comma-separated key=value pairs, e.g. region=us-east,type=database"}
		}
		out[k] = v
	}
	return out, nil
}

// FormatLabels renders labels as sorted "k=v,k2=v2".
func FormatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// LoadConfigFile reads a YAML config file with the same keys as Config. Unknown keys are an
// error naming the key, so a typo never silently falls back to a default.
func LoadConfigFile(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("node: config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) { // empty file
			return c, nil
		}
		return c, fmt.Errorf("node: config file %s: %w (keys: cluster, node, bind, advertise, join, cluster_key, labels, data_dir, no_mdns, no_port_map, api_listen, api_token, log_level, liveness, reserve_cpu_percent, reserve_ram_mb, reserve_disk_mb, code_roots, disk_quota, gossip_batch, anti_entropy_interval, snapshot_interval)", path, err)
	}
	return c, nil
}

// Merge overlays the fields set in over (non-zero) onto c: used for flags over file.
func (c *Config) Merge(over Config, set map[string]bool) {
	c.LogsTraces.merge(over.LogsTraces, set)
	c.mergeDFS(over, set)
	c.mergeLocks(over, set)
	if set["cluster"] {
		c.Cluster = over.Cluster
	}
	if set["node"] {
		c.Node = over.Node
	}
	if set["bind"] {
		c.Bind = over.Bind
	}
	if set["advertise"] {
		c.Advertise = over.Advertise
	}
	if set["join"] {
		c.Join = over.Join
	}
	if set["cluster-key"] {
		c.ClusterKey = over.ClusterKey
	}
	if set["labels"] {
		c.Labels = over.Labels
	}
	if set["data-dir"] {
		c.DataDir = over.DataDir
	}
	if set["no-port-map"] {
		c.NoPortMap = over.NoPortMap
	}
	if set["no-mdns"] {
		c.NoMDNS = over.NoMDNS
	}
	if set["api-listen"] {
		c.APIListen = over.APIListen
	}
	if set["api-token"] {
		c.APIToken = over.APIToken
	}
	if set["mesh-listen"] {
		c.MeshListen = over.MeshListen
	}
	if set["mesh-exec-checks"] {
		c.MeshExecChecks = over.MeshExecChecks
	}
	if set["log-level"] {
		c.LogLevel = over.LogLevel
	}
	if set["liveness"] {
		c.Liveness = over.Liveness
	}
	c.mergeInstances(over, set)
	c.mergeMonitor(over, set)
}
