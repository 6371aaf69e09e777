package sandbox

import "time"

// BenchConfig configures Bench. Zero values take the defaults in brackets.
type BenchConfig struct {
	// Dir is a scratch directory (removed afterwards) [a new temp dir].
	Dir string
	// Program is the probe: a static executable that writes one byte to stdout and
	// exits when started as argv[0] "constellation-sandbox-probe" [a copy of this
	// binary: Init makes it the probe under that name].
	Program string
	// Starts is the number of cold starts measured [200].
	Starts int
	// Parallel is the number of instances of the start-many measurement [100].
	Parallel int
	// Idle is the number of idle instances of the memory measurement [500]; -1 skips.
	Idle int
	// Runc compares with `runc run` on the same probe and limits [true if runc is in
	// PATH]; RuncStarts runs are measured [Starts].
	NoRunc     bool
	RuncStarts int
	// Limits applied to every instance [cpu_percent 100, ram_mb 64, pids 64].
	Limits Limits
	// DiskMB, when > 0, also measures cold starts with a disk quota of this size.
	DiskMB int64
	// Logf reports progress [silent].
	Logf func(format string, args ...any)
}

// BenchResult holds the measurements.
type BenchResult struct {
	Starts             int           `json:"starts"`
	ColdP50            time.Duration `json:"cold_p50"`
	ColdP99            time.Duration `json:"cold_p99"`
	ColdDiskP50        time.Duration `json:"cold_disk_p50,omitempty"` // with disk_mb (DiskQuotaMode)
	ColdDiskP99        time.Duration `json:"cold_disk_p99,omitempty"`
	DiskQuotaMode      string        `json:"disk_quota_mode"`
	RuncStarts         int           `json:"runc_starts,omitempty"`
	RuncP50            time.Duration `json:"runc_p50,omitempty"`
	RuncP99            time.Duration `json:"runc_p99,omitempty"`
	RuncRatio          float64       `json:"runc_ratio,omitempty"` // runc p50 / sandbox p50
	Parallel           int           `json:"parallel"`
	StartManyWall      time.Duration `json:"start_many_wall"`
	Idle               int           `json:"idle"`
	IdleSupervisorRSS  int64         `json:"idle_supervisor_rss_per_instance"`  // bytes
	IdleCgroupKernel   int64         `json:"idle_cgroup_kernel_per_instance"`   // bytes
	IdleInstanceMemory int64         `json:"idle_instance_memory_per_instance"` // bytes, charged to its cgroup
}
