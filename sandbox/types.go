package sandbox

import (
	"os"
	"time"
)

// State is an instance's lifecycle state.
type State string

// Instance states.
const (
	StateCreated    State = "created"    // created, never started (or restored)
	StateRunning    State = "running"    // program running
	StateRestarting State = "restarting" // exited; a restart is scheduled (backoff)
	StateExited     State = "exited"     // exited and will not be restarted
)

// Reason says why a run ended.
type Reason string

// Exit reasons.
const (
	ReasonExited    Reason = "exited"     // the program exited; Exit.Code is its status
	ReasonSignaled  Reason = "signaled"   // killed by a signal; Exit.Code is the signal number
	ReasonOOMKilled Reason = "oom_killed" // the kernel OOM killer fired in the instance's cgroup
	// ReasonUnknown: the run ended while supervised by a runtime that re-adopted it (not
	// the parent), so the status was not observable. See Exit.
	ReasonUnknown Reason = "unknown"
	// ReasonDiskExceeded: only with DiskQuotaPoll, the data layer outgrew disk_mb and the
	// runtime killed the instance.
	ReasonDiskExceeded Reason = "disk_exceeded"
	// ReasonStartFailed: the program could not be started (for example the executable
	// vanished before a restart).
	ReasonStartFailed Reason = "start_failed"
)

// Exit describes the end of one run.
type Exit struct {
	Reason Reason `json:"reason"`
	// Code is the exit status for ReasonExited, the signal number for ReasonSignaled and
	// ReasonOOMKilled (when known), -1 when unknown.
	Code int `json:"code"`
	// Stopped is true when the run ended because Stop, Restart or Destroy asked for it.
	Stopped bool      `json:"stopped,omitempty"`
	At      time.Time `json:"at"`
	// Error is set for ReasonStartFailed.
	Error string `json:"error,omitempty"`
}

// EventType names a lifecycle change.
type EventType string

// Event types.
const (
	EventCreated    EventType = "created"
	EventStarted    EventType = "started"
	EventExited     EventType = "exited"     // Event.Exit says why
	EventRestarting EventType = "restarting" // Event.Delay until the next start
	EventAdopted    EventType = "adopted"    // a new runtime took over a running instance
	EventDestroyed  EventType = "destroyed"
)

// Event is one lifecycle change, delivered to Config.OnEvent so a node can replicate
// instance status.
type Event struct {
	Type     EventType     `json:"type"`
	Instance string        `json:"instance"`
	State    State         `json:"state"`
	PID      int           `json:"pid,omitempty"`
	Exit     *Exit         `json:"exit,omitempty"`
	Restarts int           `json:"restarts"`
	Delay    time.Duration `json:"delay,omitempty"`
	At       time.Time     `json:"at"`
}

// Info is a snapshot of one instance's status.
type Info struct {
	Name      string    `json:"name"`
	Spec      Spec      `json:"spec"`
	State     State     `json:"state"`
	PID       int       `json:"pid,omitempty"` // host PID of the program
	StartedAt time.Time `json:"started_at,omitzero"`
	LastExit  *Exit     `json:"last_exit,omitempty"`
	Restarts  int       `json:"restarts"`
	Cpuset    string    `json:"cpuset,omitempty"` // pinned cores (cpu_cores)
	// HostUID is the host uid (and gid) that uid 0 inside the instance maps to; the
	// instance's uids 0..65535 are HostUID..HostUID+65535 on the host. 0 for host_root.
	HostUID int `json:"host_uid,omitempty"`
	// IP is the instance's address on the node bridge (network bridge), reachable from
	// the node and from the other instances on the bridge.
	IP string `json:"ip,omitempty"`
}

// Stats are an instance's resource usage.
type Stats struct {
	// CPUPercent is CPU time used over the interval since the previous Stats call for
	// this instance (or since start), as a percentage of one core.
	CPUPercent float64 `json:"cpu_percent"`
	// CPUSeconds is the CPU time the instance's cgroup used since it was created.
	CPUSeconds float64       `json:"cpu_seconds"`
	RAMMB      float64       `json:"ram_mb"`  // memory in use, without reclaimable page cache
	DiskMB     float64       `json:"disk_mb"` // size of the data layer
	PIDs       int64         `json:"pids"`
	Uptime     time.Duration `json:"uptime"`
	Restarts   int           `json:"restarts"`
	// Limits currently applied (RAMMB etc. as enforced in the cgroup).
	Limits Limits `json:"limits"`
	// LogDroppedBytes counts output dropped over Config.LogRateBytes since the runtime
	// started supervising the instance.
	LogDroppedBytes int64 `json:"log_dropped_bytes"`
}

// Stream selects a log stream.
type Stream string

// Log streams.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Disk quota modes (Config.DiskQuota).
const (
	// DiskQuotaAuto picks DiskQuotaXFS when an XFS image mounts with project quotas,
	// else DiskQuotaExt4 when mkfs.ext4 and loop devices work, else DiskQuotaPoll.
	DiskQuotaAuto = "auto"
	// DiskQuotaXFS: one sparse XFS image per state directory, loop-mounted with project
	// quotas; each instance's data layer is one project. A write past disk_mb fails with
	// ENOSPC inside the instance. Setting up or changing a quota is two syscalls.
	DiskQuotaXFS = "xfs"
	// DiskQuotaPoll: data on the state directory's own filesystem; the runtime measures
	// each data layer every Config.DiskPollInterval and kills an instance over disk_mb
	// (Exit.Reason disk_exceeded). Writes do not fail with ENOSPC: the fallback where no
	// quota-capable filesystem is available.
	DiskQuotaPoll = "poll"
	// DiskQuotaNone: disk_mb is rejected with ErrUnenforceable.
	DiskQuotaNone = "none"
)

// DiskQuotaExt4 (Config.DiskQuota): each instance with disk_mb gets its own ext4 image
// of that size, loop-mounted as its data directory: a write past disk_mb fails with
// ENOSPC. Images are sparse copies of a per-size template made once with mkfs.ext4, so
// creating one costs a file copy of the filesystem metadata, a loop attach and a mount.
// Used where the kernel lacks XFS quota support. disk_mb cannot change on a created
// instance in this mode (ErrUnenforceable): recreate it with the new size.
const DiskQuotaExt4 = "ext4"

// runPipes are the runtime's ends of one run's pipes (nil where unused): the init's
// status reports and the program's stdout and stderr.
type runPipes struct {
	status, stdout, stderr *os.File
}

func (p *runPipes) close() {
	for _, f := range []*os.File{p.status, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
}
