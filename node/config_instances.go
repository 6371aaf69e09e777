package node

import (
	"fmt"
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
}

func (c *Config) validateInstances() error {
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
}

// reserve returns a reserve value for accounting: "none" markers count as zero.
func reserveMB(v int64) int64 { return max(0, v) }
