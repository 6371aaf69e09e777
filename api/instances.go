package api

import "time"

// Instance statuses as shown by `constellation list`.
const (
	InstanceCreated   = "created"
	InstanceStarting  = "starting" // a restart is scheduled (backoff) or in progress
	InstanceRunning   = "running"
	InstanceStopped   = "stopped" // stopped on request
	InstanceExited    = "exited"  // exited by itself with status 0 (or unknown status)
	InstanceFailed    = "failed"  // exited non-zero, killed by a signal, or could not start
	InstanceOOMKilled = "oom_killed"
)

// ResourcesInfo answers GET /v1/resources (`constellation resources`, the seed's
// constellation.resources()): totals over alive nodes, plus every node.
type ResourcesInfo struct {
	CPUTotal        int             `json:"cpu_total"`     // cores
	CPUAvailable    float64         `json:"cpu_available"` // percent of the total not reserved nor allocated
	RAMTotalGB      float64         `json:"ram_total_gb"`
	RAMAvailableGB  float64         `json:"ram_available_gb"`
	DiskTotalTB     float64         `json:"disk_total_tb"`
	DiskAvailableTB float64         `json:"disk_available_tb"`
	Instances       int             `json:"instances"`
	NodesAlive      int             `json:"nodes_alive"`
	Nodes           []NodeResources `json:"nodes"`
}

// NodeResources is one node's line of ResourcesInfo.
type NodeResources struct {
	Name           string  `json:"name"`
	ID             string  `json:"id"`
	Status         string  `json:"status"`
	CPUTotal       int     `json:"cpu_total"`
	CPUAvailable   float64 `json:"cpu_available"`
	CPUFreePercent float64 `json:"cpu_free_percent"` // what a create may still ask, in cpu_percent units
	// Held by live reservations (already subtracted from the available figures).
	CPUReservedPercent float64 `json:"cpu_reserved_percent"`
	RAMReservedGB      float64 `json:"ram_reserved_gb"`
	RAMTotalGB         float64 `json:"ram_total_gb"`
	RAMAvailableGB     float64 `json:"ram_available_gb"`
	DiskTotalTB        float64 `json:"disk_total_tb"`
	DiskAvailableTB    float64 `json:"disk_available_tb"`
	Instances          int     `json:"instances"`
	Running            int     `json:"running"`
	CanRun             bool    `json:"instances_available"`
	Reported           bool    `json:"reported"` // false: no resource record yet (totals from membership)
	// Measured use of its running instances (sampled every 10 s).
	CPUUsedPercent float64 `json:"cpu_used_percent"` // cpu_percent units
	RAMUsedGB      float64 `json:"ram_used_gb"`
	DiskUsedTB     float64 `json:"disk_used_tb"`
}

// CreateRequest is the body of POST /v1/instances. Field names follow the seed plan.
type CreateRequest struct {
	Name string `json:"name"`
	// Namespace groups instances (as deployments' namespaces do); default "default".
	Namespace string `json:"namespace,omitempty"`
	// Node is the node to run on (name or peer ID); empty: the node that receives the request.
	Node string `json:"node,omitempty"`
	// Exactly one of Command and Script. Script is a file in Code, or, with ScriptContent,
	// the name of an uploaded script (the CLI's --script FILE sends the file's content).
	Command       []string          `json:"command,omitempty"`
	Script        string            `json:"script,omitempty"`
	ScriptContent string            `json:"script_content,omitempty"`
	Runtime       string            `json:"runtime,omitempty"`
	Args          []string          `json:"args,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Code          string            `json:"code,omitempty"` // a directory under the node's code roots
	CPUPercent    float64           `json:"cpu_percent,omitempty"`
	CPUCores      int               `json:"cpu_cores,omitempty"`
	RAMMB         int64             `json:"ram_mb,omitempty"`
	RAMGB         float64           `json:"ram_gb,omitempty"` // alternative to ram_mb
	DiskMB        int64             `json:"disk_mb,omitempty"`
	PIDs          int64             `json:"pids,omitempty"`
	// Restart is "never" (default), "on-failure", "on-failure:N" or "always".
	Restart string `json:"restart,omitempty"`
	UID     *int   `json:"uid,omitempty"`
	GID     *int   `json:"gid,omitempty"`
	// Network is "bridge" (the node's default unless configured otherwise: an own
	// address on the node bridge, NAT to the outside), "none" (loopback only) or
	// "host" (the node's network, explicitly).
	Network string `json:"network,omitempty"`
	// Publish forwards node ports to the instance (bridge only), each
	// "HOSTPORT:PORT[/tcp|/udp]" as in `docker run -p`.
	Publish []string `json:"publish,omitempty"`
	// Start starts the instance right away (default true); false only creates it.
	Start *bool `json:"start,omitempty"`
	// Reservation runs the instance on the capacity of a reservation (`create --reservation
	// ID`): on the node holding it, with its resources unless given (scheduler/reserve.go).
	Reservation string `json:"reservation,omitempty"`
	// HostRoot runs the instance without a user namespace (uid 0 is host root): refused
	// unless the node runs with --allow-host-root. Admin callers only.
	HostRoot bool `json:"host_root,omitempty"`
	// Seccomp is the system call filter: "default" (Docker's allow-list), "unconfined" or
	// the absolute path of an OCI seccomp profile on the node. Admin callers only.
	Seccomp string `json:"seccomp,omitempty"`
	// Grants are what the instance's token may do beyond its own instance (`create --grant
	// G`): instances:read, instances:manage, instances:create, deployments:read,
	// deployments:write, nodes:read, events:read, messages:send (docs/instances.md).
	Grants []string `json:"grants,omitempty"`
	// Secrets names secrets of the instance's namespace (`constellation secrets set`)
	// given to it as environment variables of the same names ("NAME:file": as the file
	// /run/secrets/NAME), decrypted by the node that runs it at each start; the values
	// are in no record, list or answer.
	Secrets []string `json:"secrets,omitempty"`
	// MountFS gives the instance FUSE views of DFS directories (`create --mount-fs
	// /cluster/data:/data[:ro]`, repeatable): PREFIX:TARGET, optionally :ro (read-only,
	// EROFS even for root inside) or :rw (the default); writes commit to the DFS on
	// close, flush or fsync (docs/dfs.md, "Mounting"). Admin callers only.
	MountFS []string `json:"mount_fs,omitempty"`
	// MetricsPort, when set, is a port where the instance serves Prometheus metrics at
	// /metrics; its node scrapes it at every sampling interval (docs/monitor.md).
	MetricsPort int `json:"metrics_port,omitempty"`
	// Deployment is the deployment the instance belongs to. Set only by the scheduler
	// in process (never decoded from a request body: json "-").
	Deployment string `json:"-"`
}

// LimitsRequest is the body of POST /v1/instances/{name}/set-limits and (optional) of
// .../restart: absent fields keep their current value, 0 removes a limit.
type LimitsRequest struct {
	CPUPercent *float64 `json:"cpu_percent,omitempty"`
	CPUCores   *int     `json:"cpu_cores,omitempty"`
	RAMMB      *int64   `json:"ram_mb,omitempty"`
	DiskMB     *int64   `json:"disk_mb,omitempty"`
	PIDs       *int64   `json:"pids,omitempty"`
	// GraceS is the stop grace period of a restart (default 10).
	GraceS *float64 `json:"grace_s,omitempty"`
}

// StopRequest is the optional body of .../stop (DELETE takes ?grace=5s instead).
type StopRequest struct {
	GraceS *float64 `json:"grace_s,omitempty"` // SIGTERM, then SIGKILL after this (default 10)
	// Signal is sent instead of SIGTERM: a name (TERM, SIGINT, HUP...) or a number.
	Signal string `json:"signal,omitempty"`
}

// Snapshot is one element of GET /v1/instances/{name}/snapshots.
type Snapshot struct {
	Tag      string    `json:"tag"`
	Instance string    `json:"instance"`
	Node     string    `json:"node"`
	At       time.Time `json:"at"`
	Bytes    int64     `json:"bytes"`
}

// SnapshotRequest is the body of .../snapshot and .../restore.
type SnapshotRequest struct {
	Tag string `json:"tag"`
}

// WaitResult answers .../wait.
type WaitResult struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	Reason   string `json:"reason"`
}

// InstanceStats answers GET /v1/instances/{name}/stats (`constellation stats NAME --json`).
type InstanceStats struct {
	Name     string  `json:"name"`
	Node     string  `json:"node"`
	Status   string  `json:"status"`
	CPU      float64 `json:"cpu"` // percent of one core since the previous stats call
	RAMMB    float64 `json:"ram_mb"`
	DiskMB   float64 `json:"disk_mb"`
	PIDs     int64   `json:"pids"`
	UptimeS  float64 `json:"uptime_s"`
	Restarts int     `json:"restarts"`
	Limits   Limits  `json:"limits"`
}

// SnapshotResult answers .../snapshot and .../restore.
type SnapshotResult struct {
	Name      string `json:"name"`
	Tag       string `json:"tag"`
	Node      string `json:"node"`
	Bytes     int64  `json:"bytes,omitempty"`
	Restarted bool   `json:"restarted,omitempty"` // restore stopped and started a running instance
}

// EventInstance is streamed by GET /v1/events (`constellation events --type instance`) when
// an instance anywhere in the cluster changes status (created, running, stopped, exited,
// failed, oom_killed, starting) or is removed ("removed"). Every node derives these events
// from the replicated records, so each node reports every instance's changes. Event.Node
// is the instance's node; Event.Data is an InstanceEvent.
const EventInstance = "instance"

// InstanceEvent is the data of an "instance" event.
type InstanceEvent struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Status     string `json:"status"` // an instance status, or "removed"
	ExitCode   *int   `json:"exit_code,omitempty"`
	ExitReason string `json:"exit_reason,omitempty"`
	Restarts   int    `json:"restarts"`
}

// Instance is one element of GET /v1/instances (`constellation list --json`) and the answer
// of create and show.
type Instance struct {
	Name       string  `json:"name"`
	Namespace  string  `json:"namespace"`
	ID         string  `json:"id"`      // random, unique per create
	Node       string  `json:"node"`    // name of the node running it
	NodeID     string  `json:"node_id"` // its peer ID
	NodeStatus string  `json:"node_status,omitempty"`
	Status     string  `json:"status"`
	ExitCode   *int    `json:"exit_code"` // null until the first exit
	ExitReason string  `json:"exit_reason,omitempty"`
	Restarts   int     `json:"restarts"`
	CPUPercent float64 `json:"cpu_percent"`
	CPUCores   int     `json:"cpu_cores,omitempty"`
	RAMMB      int64   `json:"ram_mb"`
	DiskMB     int64   `json:"disk_mb"`
	PIDs       int64   `json:"pids"`
	// Program, as given at create.
	Command []string          `json:"command,omitempty"`
	Script  string            `json:"script,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Code    string            `json:"code,omitempty"`
	Restart string            `json:"restart"` // never | on-failure[:N] | always
	Network string            `json:"network,omitempty"`
	Publish []string          `json:"publish,omitempty"` // HOSTPORT:PORT/PROTO
	IP      string            `json:"ip,omitempty"`      // address on the node bridge
	// Grants of the instance's token; CreatedBy is the instance that created it (if any).
	Grants []string `json:"grants,omitempty"`
	// Secrets are the names of the secrets the instance gets (never their values).
	Secrets   []string `json:"secrets,omitempty"`
	MountFS   []string `json:"mount_fs,omitempty"` // DFS views (PREFIX:TARGET[:ro])
	CreatedBy string   `json:"created_by,omitempty"`
	// MetricsPort is where the instance serves /metrics for its node to scrape (0: none).
	MetricsPort int `json:"metrics_port,omitempty"`
	// Deployment is the deployment that placed the instance (empty: a standalone one).
	Deployment string `json:"deployment,omitempty"`

	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Limits are an instance's resource limits as the API shows them (0: unlimited).
type Limits struct {
	CPUPercent float64 `json:"cpu_percent,omitempty"` // 100 = one core
	CPUCores   int     `json:"cpu_cores,omitempty"`   // dedicated cores
	RAMMB      int64   `json:"ram_mb,omitempty"`
	DiskMB     int64   `json:"disk_mb,omitempty"`
	PIDs       int64   `json:"pids,omitempty"`
}
