package node

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/sandbox"
)

// Default reserves for the OS and the node itself (Config.Reserve*).
const (
	DefaultReserveRAMMB  = 512
	DefaultReserveDiskMB = 1024
)

func (c *Config) instanceDefaults() {
	switch {
	case c.ReserveCPUPercent == 0:
		c.ReserveCPUPercent = instances.DefaultReserveCPU()
	case c.ReserveCPUPercent < 0:
		c.ReserveCPUPercent = 0.000001 // "none": tiny, so a second Defaults keeps it
	}
	switch {
	case c.ReserveRAMMB == 0:
		c.ReserveRAMMB = DefaultReserveRAMMB
	case c.ReserveRAMMB < 0:
		c.ReserveRAMMB = -1
	}
	switch {
	case c.ReserveDiskMB == 0:
		c.ReserveDiskMB = DefaultReserveDiskMB
	case c.ReserveDiskMB < 0:
		c.ReserveDiskMB = -1
	}
	if c.DiskQuota == "" {
		c.DiskQuota = sandbox.DiskQuotaAuto
	}
	if c.DefaultNetwork == "" {
		c.DefaultNetwork = sandbox.NetworkBridge
	}
	if c.Bridge == "" {
		c.Bridge = sandbox.DefaultBridge
	}
	if c.BridgeSubnet == "" {
		c.BridgeSubnet = sandbox.DefaultBridgeSubnet
	}
	if c.DefaultRAMMB == 0 {
		c.DefaultRAMMB = DefaultInstanceRAMMB
	}
	if c.DefaultPIDs == 0 {
		c.DefaultPIDs = DefaultInstancePIDs
	}
}

// Default limits of an instance that asks for none (Config.Default*). CPU has none by
// default: it is compressible (instances share it fairly), and a default cpu_percent would
// also reserve that much of the node in admission (a 2-core node would take one
// unconfigured instance). Memory and processes, which can take a node down, do.
const (
	DefaultInstanceRAMMB = 512
	DefaultInstancePIDs  = 512
)

// instanceLimits are the node's default and maximum instance limits (negative: none).
func (c *Config) instanceLimits() (def, max sandbox.Limits) {
	def = sandbox.Limits{CPUPercent: math.Max(0, c.DefaultCPUPercent), RAMMB: max0(c.DefaultRAMMB),
		PIDs: max0(c.DefaultPIDs), DiskMB: max0(c.DefaultDiskMB)}
	max = sandbox.Limits{CPUPercent: c.MaxCPUPercent, RAMMB: c.MaxRAMMB, PIDs: c.MaxPIDs, DiskMB: c.MaxDiskMB}
	return def, max
}

func max0(v int64) int64 { return max(0, v) }

func (c *Config) validateInstances() error {
	for _, x := range []struct {
		field string
		v     float64
	}{{"max_cpu_percent", c.MaxCPUPercent}, {"max_ram_mb", float64(c.MaxRAMMB)}, {"max_pids", float64(c.MaxPIDs)}, {"max_disk_mb", float64(c.MaxDiskMB)}} {
		if x.v < 0 {
			return &ConfigError{x.field, fmt.Sprint(x.v), "a positive maximum, or 0 for none"}
		}
	}
	if c.DefaultRAMMB > 0 && c.DefaultRAMMB < sandbox.MinRAMMB {
		return &ConfigError{"default_ram_mb", fmt.Sprint(c.DefaultRAMMB), fmt.Sprintf("at least %d MiB, or negative for none", sandbox.MinRAMMB)}
	}
	def, max := c.instanceLimits()
	if (max.CPUPercent > 0 && def.CPUPercent > max.CPUPercent) || (max.RAMMB > 0 && def.RAMMB > max.RAMMB) ||
		(max.PIDs > 0 && def.PIDs > max.PIDs) || (max.DiskMB > 0 && def.DiskMB > max.DiskMB) {
		return &ConfigError{"default_*", fmt.Sprintf("%+v", def), fmt.Sprintf("defaults within the maxima %+v", max)}
	}
	if c.ReserveCPUPercent > 100000 {
		return &ConfigError{"reserve_cpu_percent", fmt.Sprint(c.ReserveCPUPercent), "CPU in cpu_percent units (100 = one core), e.g. 50; negative for none"}
	}
	if c.ReserveRAMMB > 1<<30 {
		return &ConfigError{"reserve_ram_mb", fmt.Sprint(c.ReserveRAMMB), "MiB of RAM kept for the OS, e.g. 512; negative for none"}
	}
	if c.ReserveDiskMB > 1<<40 {
		return &ConfigError{"reserve_disk_mb", fmt.Sprint(c.ReserveDiskMB), "MiB of disk kept free, e.g. 1024; negative for none"}
	}
	for _, r := range c.CodeRoots {
		if !filepath.IsAbs(r) {
			return &ConfigError{"code_roots", r, "absolute directories, e.g. /srv/apps"}
		}
	}
	switch c.DiskQuota {
	case sandbox.DiskQuotaAuto, sandbox.DiskQuotaXFS, sandbox.DiskQuotaExt4, sandbox.DiskQuotaPoll, sandbox.DiskQuotaNone:
	default:
		return &ConfigError{"disk_quota", c.DiskQuota, "one of auto, xfs, ext4, poll, none"}
	}
	sc := sandbox.Config{StateDir: "/", DefaultNetwork: c.DefaultNetwork, Bridge: c.Bridge, BridgeSubnet: c.BridgeSubnet}
	if err := sc.ValidateNetwork(); err != nil {
		return &ConfigError{"default_network/bridge/bridge_subnet", c.DefaultNetwork + " " + c.Bridge + " " + c.BridgeSubnet, err.Error()}
	}
	return nil
}

func (c *Config) mergeInstances(over Config, set map[string]bool) {
	if set["reserve-cpu-percent"] {
		c.ReserveCPUPercent = over.ReserveCPUPercent
	}
	if set["reserve-ram-mb"] {
		c.ReserveRAMMB = over.ReserveRAMMB
	}
	if set["reserve-disk-mb"] {
		c.ReserveDiskMB = over.ReserveDiskMB
	}
	if set["code-root"] {
		c.CodeRoots = over.CodeRoots
	}
	if set["disk-quota"] {
		c.DiskQuota = over.DiskQuota
	}
	if set["default-network"] {
		c.DefaultNetwork = over.DefaultNetwork
	}
	if set["bridge"] {
		c.Bridge = over.Bridge
	}
	if set["bridge-subnet"] {
		c.BridgeSubnet = over.BridgeSubnet
	}
	for flag, apply := range map[string]func(){
		"default-cpu-percent": func() { c.DefaultCPUPercent = over.DefaultCPUPercent },
		"default-ram-mb":      func() { c.DefaultRAMMB = over.DefaultRAMMB },
		"default-pids":        func() { c.DefaultPIDs = over.DefaultPIDs },
		"default-disk-mb":     func() { c.DefaultDiskMB = over.DefaultDiskMB },
		"max-cpu-percent":     func() { c.MaxCPUPercent = over.MaxCPUPercent },
		"max-ram-mb":          func() { c.MaxRAMMB = over.MaxRAMMB },
		"max-pids":            func() { c.MaxPIDs = over.MaxPIDs },
		"max-disk-mb":         func() { c.MaxDiskMB = over.MaxDiskMB },
		"allow-host-root":     func() { c.AllowHostRoot = over.AllowHostRoot },
	} {
		if set[flag] {
			apply()
		}
	}
}

// reserve returns a reserve value for accounting: "none" markers count as zero.
func reserveMB(v int64) int64 { return max(0, v) }
