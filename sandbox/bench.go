package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

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
	// NoNetwork skips the cold starts with bridge networking; Bridge and BridgeSubnet
	// are the benchmark's own bridge [c7nb<pid>, 198.19.255.0/24: the benchmarking
	// range of RFC 2544]. The other measurements use the host network.
	NoNetwork    bool
	Bridge       string
	BridgeSubnet string
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
	ColdNetP50         time.Duration `json:"cold_net_p50,omitempty"` // network bridge
	ColdNetP99         time.Duration `json:"cold_net_p99,omitempty"`
	DiskQuotaMode      string        `json:"disk_quota_mode"`
	RuncStarts         int           `json:"runc_starts,omitempty"`
	RuncP50            time.Duration `json:"runc_p50,omitempty"`
	RuncP99            time.Duration `json:"runc_p99,omitempty"`
	RuncRatio          float64       `json:"runc_ratio,omitempty"`     // runc p50 / sandbox p50
	RuncRatioNet       float64       `json:"runc_ratio_net,omitempty"` // runc p50 / bridge p50
	Parallel           int           `json:"parallel"`
	StartManyWall      time.Duration `json:"start_many_wall"`
	Idle               int           `json:"idle"`
	IdleSupervisorRSS  int64         `json:"idle_supervisor_rss_per_instance"`  // bytes
	IdleCgroupKernel   int64         `json:"idle_cgroup_kernel_per_instance"`   // bytes
	IdleInstanceMemory int64         `json:"idle_instance_memory_per_instance"` // bytes, charged to its cgroup
	// The instance init's own share of that (PID 1 of each idle instance, from
	// /proc/PID/smaps_rollup): resident, proportional and anonymous memory.
	IdleInitRSS  int64 `json:"idle_init_rss_per_instance"`
	IdleInitPSS  int64 `json:"idle_init_pss_per_instance"`
	IdleInitAnon int64 `json:"idle_init_anon_per_instance"`
}

// BuildProbe compiles the benchmark's probe as a static C program in dir when a C compiler
// with a static libc is available: it starts in well under a millisecond, so Bench then
// measures the launch itself rather than a Go runtime's start. It returns the program's path
// and a description, or "" when no compiler could build it (Bench then uses a copy of the
// running binary).
func BuildProbe(dir string) (path, kind string, err error) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", "", nil
	}
	src := filepath.Join(dir, "probe.c")
	bin := filepath.Join(dir, "probe")
	if err := os.WriteFile(src, []byte("#include <unistd.h>\nint main(void){ return write(1, \"x\", 1) == 1 ? 0 : 1; }\n"), 0o644); err != nil {
		return "", "", err
	}
	if out, err := exec.Command(cc, "-O2", "-static", "-o", bin, src).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("sandbox: cc -static: %v: %s", err, out)
	}
	return bin, "static C (" + cc + ")", nil
}
