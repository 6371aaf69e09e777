package node

import (
	"fmt"
	"time"
)

// DFSConfig configures the distributed file system (config key "dfs").
type DFSConfig struct {
	// CacheMB bounds the blocks this node keeps of files it does not hold (read here,
	// unpinned): an LRU. Default 1024; negative: no cache.
	CacheMB int64 `yaml:"cache_mb"`
	// CapacityMB bounds the block store (pinned, leased and cached blocks). Default 0: the
	// free space of the data dir's disk.
	CapacityMB int64 `yaml:"capacity_mb"`
	// Grace is how long a dead holder still counts as a copy before another node copies
	// its files. Default 30s.
	Grace time.Duration `yaml:"grace"`
	// RepairInterval is the period of the replication runner. Default 5s.
	RepairInterval time.Duration `yaml:"repair_interval"`
	// ZoneLabel names the label whose value is this node's failure domain (copies are
	// spread over domains first). Default "zone", then "region".
	ZoneLabel string `yaml:"zone_label"`
	// StrongTimeout bounds each lock service call of a strong tree's read or write (the
	// lock service retries through an election within it); a node without quorum answers
	// 503 unavailable after it. Default 5s.
	StrongTimeout time.Duration `yaml:"strong_timeout"`
}

func (c *DFSConfig) validate() error {
	switch {
	case c.CapacityMB < 0:
		return fmt.Errorf("node: dfs.capacity_mb %d is negative; give MB > 0, or 0 for the disk's free space", c.CapacityMB)
	case c.RepairInterval < 0:
		return fmt.Errorf("node: dfs.repair_interval %s is negative; give a duration such as 5s", c.RepairInterval)
	case c.Grace < 0:
		return fmt.Errorf("node: dfs.grace %s is negative; give a duration such as 30s", c.Grace)
	case c.StrongTimeout < 0:
		return fmt.Errorf("node: dfs.strong_timeout %s is negative; give a duration such as 5s", c.StrongTimeout)
	}
	return nil
}

// mergeDFS takes the dfs-* flags that were set.
func (c *Config) mergeDFS(over Config, set map[string]bool) {
	if set["dfs-cache-mb"] {
		c.DFS.CacheMB = over.DFS.CacheMB
	}
	if set["dfs-capacity-mb"] {
		c.DFS.CapacityMB = over.DFS.CapacityMB
	}
	if set["dfs-grace"] {
		c.DFS.Grace = over.DFS.Grace
	}
}
