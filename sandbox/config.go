package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Config configures a Runtime. Zero values take the documented defaults (see
// DefaultConfig); StateDir is required.
type Config struct {
	// StateDir holds instance state (JSON), logs, the data filesystem and snapshots. A new
	// Runtime over the same StateDir re-adopts running instances. Required, absolute.
	StateDir string
	// CodeRoots are the host directories code directories must live under. Empty: specs
	// with a code directory are rejected.
	CodeRoots []string
	// CgroupParent is where instance cgroups are created: relative ("constellation", the
	// default) means below this process's own cgroup in each hierarchy (on cgroup v2 with
	// systemd delegation the runtime first moves itself into a "supervisor" leaf);
	// absolute ("/constellation") means below the hierarchy root.
	CgroupParent string
	// CgroupRoot overrides the mount point of a cgroup v2 hierarchy ("" = detect:
	// /sys/fs/cgroup when it is cgroup2, else the v1 controllers).
	CgroupRoot string
	// DiskQuota is DiskQuotaAuto (default), DiskQuotaXFS, DiskQuotaExt4, DiskQuotaPoll or
	// DiskQuotaNone.
	DiskQuota string
	// DataImageMB is the size of the sparse XFS data image (default 65536; it only uses
	// what instances write). Ignored once the image exists.
	DataImageMB int64
	// DefaultUID and DefaultGID run instances whose spec has no uid/gid (inside the
	// instance's user namespace). Zero means 65534 (nobody): an instance runs as its
	// namespace's root only when its spec says uid 0.
	DefaultUID, DefaultGID int
	// AllowHostRoot permits specs with host_root (no user namespace: uid 0 is the
	// host's root). Off by default; the node's --allow-host-root.
	AllowHostRoot bool
	// UIDBase and UIDSlots define the host uid ranges of instances: instance k maps
	// its uids and gids 0..65535 to UIDBase+k*65536... (default 1879048192 and 4094
	// slots: see the userns.go comment for why). UIDBase must be at least 65536 and
	// the ranges must end below 4294967295.
	UIDBase, UIDSlots int
	// SystemDirs are bound read-only into every instance at the same path (default
	// /bin /sbin /lib /lib32 /lib64 /libx32 /usr; missing ones are skipped). /etc is
	// not allowed: instances get a generated /etc (see EtcFiles).
	SystemDirs []string
	// EtcFiles are the host /etc entries bound read-only into an instance's generated
	// /etc (passwd, group, hosts, hostname, resolv.conf and nsswitch.conf are generated
	// and cannot be listed). Default: the certificate stores, dynamic loader cache,
	// alternatives, time zone, services and protocols; nil takes the default, an empty
	// slice gives none. Small files are copied at each start, directories bound.
	EtcFiles []string
	// DefaultNetwork is the network mode of a spec without one: NetworkBridge (the
	// default), NetworkNone or NetworkHost.
	DefaultNetwork string
	// Bridge is the name of the node bridge bridge-mode instances are on (default
	// "c7n0"; at most 15 characters, not starting with "c7v"). One runtime per bridge.
	Bridge string
	// BridgeSubnet is the bridge's IPv4 subnet (default 10.213.0.0/16): the bridge has
	// its first address, instances get the others. It must not overlap a route of the
	// host.
	BridgeSubnet string
	// DNS are the name servers of bridge-mode instances' resolv.conf. Empty: the
	// host's, less loopback ones (which do not answer inside an instance), else those
	// of systemd-resolved's upstream file, else 8.8.8.8 and 8.8.4.4 (as Docker does).
	DNS []string
	// Env is added to every instance's environment (e.g. CONSTELLATION_API).
	Env map[string]string
	// StartEnv, when set, is asked at each start of an instance for variables added to
	// its environment that are never stored (its secrets); an error fails the start.
	StartEnv func(name string) (map[string]string, error) `json:"-"`
	// StartFiles, when set, is asked at each start of an instance for files (name ->
	// content) it gets under /run/secrets: a tmpfs (size-bounded, noexec, nosuid, nodev,
	// read-only once filled) in its mount namespace, files mode 0400 owned by its uid.
	// Never stored; an error fails the start.
	StartFiles func(name string) (map[string][]byte, error) `json:"-"`
	// StartMounts, when set, is asked at each start of an instance (owner: the host uid
	// and gid its program runs as, so files of a bound view it owns are writable by it)
	// for host directories bound into its mount namespace before pivot_root (binds.go).
	// An error fails the start.
	StartMounts func(name string, ownerUID, ownerGID int) ([]BindMount, error) `json:"-"`
	// TmpMB is the size of each instance's private /tmp (tmpfs, charged to its memory);
	// default 64.
	TmpMB int64
	// LogMaxBytes is the size of one log file (default 10 MiB) and LogFiles the number
	// of files kept per stream, the current one included (default 3): a stream never
	// takes more than LogMaxBytes x LogFiles on disk. Files rotate as they are written.
	LogMaxBytes int64
	LogFiles    int
	// LogRateBytes limits each instance's output (stdout and stderr together) to this
	// many bytes per second on average, with bursts of LogBurstBytes; the excess is
	// dropped and counted (Stats.LogDroppedBytes, a marker line in the log). Defaults 1
	// MiB/s and 8 MiB; a negative LogRateBytes disables the limit.
	LogRateBytes  int64
	LogBurstBytes int64
	// HousekeepInterval paces, with DiskQuotaPoll, disk checks, and the rotation of logs
	// of instances started by an older runtime (default 1s).
	HousekeepInterval time.Duration
	// FollowInterval is how often a following log reader polls for new data (default
	// 100ms).
	FollowInterval time.Duration
	// OnEvent receives lifecycle events in order, from one goroutine owned by the
	// runtime. It must not block for long; it may call the Runtime.
	OnEvent func(Event) `json:"-"`
	// Output, when set, also receives the instances' output as it is written to the log
	// files (after the rate limit), from the stream's pump goroutine: it must not block.
	Output OutputSink `json:"-"`
	// Logger for supervisor messages (default slog.Default()).
	Logger *slog.Logger `json:"-"`
	// Now and Rand are injectable for tests (defaults time.Now, rand.Float64).
	Now  func() time.Time `json:"-"`
	Rand func() float64   `json:"-"`
}

var bridgeNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// DefaultConfig returns a Config with every default filled in for stateDir.
func DefaultConfig(stateDir string) Config {
	c := Config{StateDir: stateDir}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.CgroupParent == "" {
		c.CgroupParent = "constellation"
	}
	if c.DiskQuota == "" {
		c.DiskQuota = DiskQuotaAuto
	}
	c.setNetworkDefaults()
	if c.DataImageMB == 0 {
		c.DataImageMB = 65536
	}
	if c.DefaultUID == 0 {
		c.DefaultUID = 65534
	}
	if c.DefaultGID == 0 {
		c.DefaultGID = 65534
	}
	if c.SystemDirs == nil {
		c.SystemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr"}
	}
	if c.EtcFiles == nil {
		c.EtcFiles = []string{"alternatives", "ssl", "pki", "crypto-policies", "localtime", "timezone", "services", "protocols", "ld.so.cache", "os-release"}
	}
	if c.UIDBase == 0 {
		c.UIDBase = defaultUIDBase
	}
	if c.UIDSlots == 0 {
		c.UIDSlots = defaultUIDSlots
	}
	if c.TmpMB == 0 {
		c.TmpMB = 64
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = 10 << 20
	}
	if c.LogFiles == 0 {
		c.LogFiles = 3
	}
	if c.LogRateBytes == 0 {
		c.LogRateBytes = 1 << 20
	}
	if c.LogBurstBytes == 0 {
		c.LogBurstBytes = 8 << 20
	}
	if c.HousekeepInterval == 0 {
		c.HousekeepInterval = time.Second
	}
	if c.FollowInterval == 0 {
		c.FollowInterval = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
}

// Validate reports configuration errors (after defaults are applied).
func (c *Config) Validate() error {
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return errors.New("sandbox: config: StateDir must be an absolute path")
	}
	for _, r := range c.CodeRoots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("sandbox: config: code root %q is not absolute", r)
		}
	}
	switch c.DiskQuota {
	case DiskQuotaAuto, DiskQuotaXFS, DiskQuotaExt4, DiskQuotaPoll, DiskQuotaNone:
	default:
		return fmt.Errorf("sandbox: config: unknown DiskQuota %q", c.DiskQuota)
	}
	if err := c.ValidateNetwork(); err != nil {
		return err
	}
	if c.DataImageMB < 300 {
		return errors.New("sandbox: config: DataImageMB must be at least 300 (XFS minimum)")
	}
	if c.DefaultUID < 0 || c.DefaultGID < 0 || c.DefaultUID >= userNSSize || c.DefaultGID >= userNSSize {
		return fmt.Errorf("sandbox: config: default uid/gid must be in [0, %d] (ids inside an instance's user namespace)", userNSSize-1)
	}
	if c.UIDBase < userNSSize || c.UIDSlots < 1 || int64(c.UIDBase)+int64(c.UIDSlots)*userNSSize > 1<<32-1 {
		return fmt.Errorf("sandbox: config: UIDBase %d with %d slots of %d: want UIDBase >= %d and ranges ending below 4294967295", c.UIDBase, c.UIDSlots, userNSSize, userNSSize)
	}
	for _, d := range c.SystemDirs {
		if !filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/" {
			return fmt.Errorf("sandbox: config: system dir %q must be a clean absolute path other than /", d)
		}
		if d == "/etc" || strings.HasPrefix(d, "/etc/") || d == appDir || d == "/proc" || d == "/dev" || d == "/tmp" || d == "/run" {
			return fmt.Errorf("sandbox: config: system dir %q: the runtime provides that directory (list host /etc entries in EtcFiles)", d)
		}
	}
	for _, e := range c.EtcFiles {
		if !localPath(e) || strings.Contains(e, "/") {
			return fmt.Errorf("sandbox: config: EtcFiles entry %q must be a name in /etc", e)
		}
	}
	if c.TmpMB < 1 || c.LogMaxBytes < 1024 || c.LogFiles < 1 || c.HousekeepInterval <= 0 || c.FollowInterval <= 0 {
		return errors.New("sandbox: config: TmpMB, LogMaxBytes (at least 1024), LogFiles and intervals must be positive")
	}
	if c.LogRateBytes > 0 && c.LogBurstBytes < 4096 {
		return fmt.Errorf("sandbox: config: LogBurstBytes %d is below 4096 (a pipe read must fit)", c.LogBurstBytes)
	}
	return nil
}

// ValidateNetwork checks DefaultNetwork, Bridge, BridgeSubnet and DNS (empty ones take
// their defaults).
func (c Config) ValidateNetwork() error {
	c.setNetworkDefaults()
	switch c.DefaultNetwork {
	case NetworkBridge, NetworkNone, NetworkHost:
	default:
		return fmt.Errorf("sandbox: config: DefaultNetwork %q: want %q, %q or %q", c.DefaultNetwork, NetworkBridge, NetworkNone, NetworkHost)
	}
	if !bridgeNameRE.MatchString(c.Bridge) || strings.HasPrefix(c.Bridge, "c7v") {
		return fmt.Errorf("sandbox: config: Bridge %q: want 1-15 characters [A-Za-z0-9_.-] not starting with c7v (instance veths), e.g. %s", c.Bridge, DefaultBridge)
	}
	if _, err := parseBridgeSubnet(c.BridgeSubnet); err != nil {
		return err
	}
	for _, d := range c.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("sandbox: config: DNS server %q is not an IP address", d)
		}
	}
	return nil
}

func (c *Config) setNetworkDefaults() {
	if c.DefaultNetwork == "" {
		c.DefaultNetwork = NetworkBridge
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.BridgeSubnet == "" {
		c.BridgeSubnet = DefaultBridgeSubnet
	}
}

// OutputSink receives instances' output (Config.Output): b is what was written to the
// stream's log file at once (usually whole lines; a long line may come in pieces). b is
// only valid during the call.
type OutputSink interface {
	InstanceOutput(instance string, stream Stream, b []byte, at time.Time)
}
