package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Priority is a scheduling priority from 0 to 100. JSON accepts a number or one of
// "low" (25), "normal" (50), "high" (75), "critical" (100); it is written as a number.
type Priority int

// priorityNames are the named priorities (sched.ParsePriority has the same names).
var priorityNames = map[string]int{"low": 25, "normal": 50, "medium": 50, "high": 75, "critical": 100}

// UnmarshalJSON accepts a number or a priority name.
func (p *Priority) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, ok := priorityNames[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 100 {
			return fmt.Errorf("priority %s: 0-100 or low, normal, high, critical", b)
		}
		v = n
	}
	*p = Priority(v)
	return nil
}

// DeploymentSpec is the body of POST /v1/deployments (`constellation deploy`): the seed
// plan's constellation.deploy fields.
type DeploymentSpec struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	// Resources per instance: cpu_percent (100 = one core) or cpu_cores (dedicated cores),
	// ram_mb or ram_gb, disk_mb, pids.
	CPUPercent float64 `json:"cpu_percent,omitempty"`
	CPUCores   int     `json:"cpu_cores,omitempty"`
	RAMMB      int64   `json:"ram_mb,omitempty"`
	RAMGB      float64 `json:"ram_gb,omitempty"`
	DiskMB     int64   `json:"disk_mb,omitempty"`
	PIDs       int64   `json:"pids,omitempty"`
	// Program: exactly one of command and script (script_content carries an uploaded file).
	Command       []string          `json:"command,omitempty"`
	Script        string            `json:"script,omitempty"`
	ScriptContent string            `json:"script_content,omitempty"`
	Args          []string          `json:"args,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Code          string            `json:"code,omitempty"`
	// Secrets of the deployment's namespace each instance gets as environment variables
	// ("NAME:file": as the file /run/secrets/NAME; as create's "secrets"; docs/security.md).
	Secrets []string `json:"secrets,omitempty"`
	// MountFS gives each instance FUSE views of DFS directories (as create's "mount_fs").
	MountFS []string `json:"mount_fs,omitempty"`
	// Placement: strategy spread (default), binpack or random; constraints on node
	// attributes (node.region=us-east, node.name!=n3, node.type in (a,b)); affinity and
	// anti-affinity terms on the labels of instances on a node (service=cache[;weight=N][;hard]);
	// spread_by a node label (e.g. region).
	Strategy     string            `json:"strategy,omitempty"`
	Constraints  []string          `json:"constraints,omitempty"`
	Affinity     []string          `json:"affinity,omitempty"`
	AntiAffinity []string          `json:"anti_affinity,omitempty"`
	SpreadBy     string            `json:"spread_by,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"` // default service=<name>
	Namespace    string            `json:"namespace,omitempty"`
	Priority     *Priority         `json:"priority,omitempty"` // default normal (50)
	// Service registers every instance in the service mesh under this name, serving
	// ServicePort (protocol http, tcp or grpc; health_check an HTTP path).
	Service         string `json:"service,omitempty"`
	ServicePort     int    `json:"port,omitempty"`
	ServiceProtocol string `json:"protocol,omitempty"`
	HealthCheck     string `json:"health_check,omitempty"`
}

// DeploymentInstance is one instance line of a DeploymentStatus.
type DeploymentInstance struct {
	Name     string `json:"name"`
	Slot     int    `json:"slot"`
	Node     string `json:"node"`
	Status   string `json:"status"` // pending, plus the instance statuses (running, failed...)
	Replaces string `json:"replaces,omitempty"`
}

// DeploymentStatus is one element of GET /v1/deployments (`constellation deployments --json`).
type DeploymentStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Instances int    `json:"instances"` // desired
	Placed    int    `json:"placed"`    // claims on live nodes
	Running   int    `json:"running"`
	Pending   int    `json:"pending"`
	// Moves counts the make-before-break moves in progress: healthy claims that replace
	// an instance whose claim is still there (a drain, or a failover from a lost node).
	// The scheduler keeps running <= instances + moves at every moment.
	Moves        int                  `json:"moves"`
	Strategy     string               `json:"strategy"`
	Priority     int                  `json:"priority"`
	CPUPercent   float64              `json:"cpu_percent,omitempty"`
	CPUCores     int                  `json:"cpu_cores,omitempty"`
	RAMMB        int64                `json:"ram_mb"`
	DiskMB       int64                `json:"disk_mb"`
	Constraints  []string             `json:"constraints"`
	Affinity     []string             `json:"affinity"`
	AntiAffinity []string             `json:"anti_affinity"`
	Owner        string               `json:"owner"` // node placing it now
	Message      string               `json:"message,omitempty"`
	CreatedAt    int64                `json:"created_at"`
	UpdatedAt    int64                `json:"updated_at"`
	InstanceList []DeploymentInstance `json:"instance_list"`
}

// ScaleRequest is the body of POST /v1/deployments/{name}/scale.
type ScaleRequest struct {
	Instances *int `json:"instances"`
}

// DrainRequest is the body of POST /v1/drain (the older form of POST /v1/nodes/{node}/drain).
type DrainRequest struct {
	Node   string `json:"node"`
	Cancel bool   `json:"cancel,omitempty"` // stop draining: the node takes placements again
}

// DrainResult answers POST /v1/nodes/{node}/drain and POST /v1/drain.
type DrainResult struct {
	Node     string `json:"node"`
	Draining bool   `json:"draining"`
	// ToMove counts the deployment instances on the node that will be moved
	// (make-before-break); Unmanaged counts plain instances that stay (not the
	// scheduler's: remove or recreate them yourself).
	ToMove    int `json:"to_move"`
	Unmanaged int `json:"unmanaged"`
}

// QuotaSpec is the body of PUT /v1/quotas/{namespace}: the seed's set_quota and
// enable_sharing fields.
type QuotaSpec struct {
	MaxCPUCores     float64 `json:"max_cpu_cores,omitempty"`
	MaxRAMGB        float64 `json:"max_ram_gb,omitempty"`
	MaxInstances    int     `json:"max_instances,omitempty"`
	AllowCPUBurst   bool    `json:"allow_cpu_burst,omitempty"`
	AllowRAMBorrow  bool    `json:"allow_ram_borrow,omitempty"`
	MaxBurstPercent int     `json:"max_burst_percent,omitempty"`
}

// QuotaInfo answers GET /v1/quotas/{namespace} (`constellation quota show`).
type QuotaInfo struct {
	Namespace string `json:"namespace"`
	QuotaSpec
	// Used is what the namespace's placed instances take, as this node sees it.
	UsedCPUCores  float64 `json:"used_cpu_cores"`
	UsedRAMGB     float64 `json:"used_ram_gb"`
	UsedInstances int     `json:"used_instances"`
	// Limits including burst and borrow (what the counters enforce); 0 is unlimited.
	LimitCPUCores  float64 `json:"limit_cpu_cores"`
	LimitRAMGB     float64 `json:"limit_ram_gb"`
	LimitInstances int     `json:"limit_instances"`
	// Grantable is what may still be admitted cluster-wide (the counters' values), and
	// LocalRights what this node holds of it.
	GrantableCPUCores  float64 `json:"grantable_cpu_cores"`
	GrantableRAMGB     float64 `json:"grantable_ram_gb"`
	GrantableInstances int64   `json:"grantable_instances"`
	LocalCPUCores      float64 `json:"local_cpu_cores"`
	LocalRAMGB         float64 `json:"local_ram_gb"`
	LocalInstances     uint64  `json:"local_instances"`
	UpdatedAt          int64   `json:"updated_at"`
	UpdatedBy          string  `json:"updated_by"`
}

// ReservationRequest is the body of POST /v1/reservations.
type ReservationRequest struct {
	CPUCores   float64 `json:"cpu_cores,omitempty"`
	CPUPercent float64 `json:"cpu_percent,omitempty"`
	RAMMB      int64   `json:"ram_mb,omitempty"`
	RAMGB      float64 `json:"ram_gb,omitempty"`
	DiskMB     int64   `json:"disk_mb,omitempty"`
	// DurationSeconds is how long the reservation holds (the seed's duration_seconds).
	DurationSeconds int64     `json:"duration_seconds"`
	Priority        *Priority `json:"priority,omitempty"`
	// Node pins the reservation to a node (name or peer ID); empty: the scheduler picks.
	Node string `json:"node,omitempty"`
}

// Reservation answers POST /v1/reservations and is one element of GET /v1/reservations.
type Reservation struct {
	ID         string    `json:"id"`
	Node       string    `json:"node"`
	NodeID     string    `json:"node_id"`
	CPUCores   float64   `json:"cpu_cores"`
	RAMMB      int64     `json:"ram_mb"`
	DiskMB     int64     `json:"disk_mb"`
	Priority   int       `json:"priority"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UsedBy     string    `json:"used_by,omitempty"` // the instance created from it
	Status     string    `json:"status,omitempty"`  // active, used, expired
	DurationS  int64     `json:"duration_seconds"`
	RemainingS float64   `json:"remaining_seconds,omitempty"`
}

// NodeDrainRequest is the optional body of POST /v1/nodes/{node}/drain.
type NodeDrainRequest struct {
	Cancel bool `json:"cancel,omitempty"` // stop draining: the node takes placements again
}

// Plan actions of a PlanInstance.
const (
	PlanPlace    = "place"    // a new instance would be placed on Node
	PlanKeep     = "keep"     // a placed instance stays on Node
	PlanStop     = "stop"     // a placed instance would be stopped (scale down)
	PlanUnplaced = "unplaced" // no node can take it now: Reason says why
)

// PlanInstance is one instance line of a DeploymentPlan.
type PlanInstance struct {
	Name     string   `json:"name"`
	Slot     int      `json:"slot"`
	Action   string   `json:"action"` // place, keep, stop or unplaced
	Node     string   `json:"node,omitempty"`
	Replaces string   `json:"replaces,omitempty"` // a drained instance it moves
	Preempts []string `json:"preempts,omitempty"` // lower-priority instances it would evict
	Reason   string   `json:"reason,omitempty"`   // why unplaced
}

// DeploymentPlan answers POST /v1/deployments?dry_run=1 (`constellation deploy --dry-run`):
// what the scheduler would do with the spec on this node's view of the cluster, without
// writing anything. The deployment's owner decides again when the spec is applied, and the
// target nodes admit each instance against their own free resources.
type DeploymentPlan struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Instances int    `json:"instances"` // desired
	Exists    bool   `json:"exists"`    // the deployment exists (the plan is an update)
	Owner     string `json:"owner"`     // the node that would place it
	// Counts of the actions in InstanceList.
	Place        int            `json:"place"`
	Keep         int            `json:"keep"`
	Stop         int            `json:"stop"`
	Unplaced     int            `json:"unplaced"`
	InstanceList []PlanInstance `json:"instance_list"`
	Message      string         `json:"message,omitempty"` // placement and quota errors
}

// QuotaPatch is the body of PATCH /v1/quotas/{namespace}: only the fields given change.
type QuotaPatch struct {
	MaxCPUCores     *float64 `json:"max_cpu_cores,omitempty"`
	MaxRAMGB        *float64 `json:"max_ram_gb,omitempty"`
	MaxInstances    *int     `json:"max_instances,omitempty"`
	AllowCPUBurst   *bool    `json:"allow_cpu_burst,omitempty"`
	AllowRAMBorrow  *bool    `json:"allow_ram_borrow,omitempty"`
	MaxBurstPercent *int     `json:"max_burst_percent,omitempty"`
}

// Apply sets the given fields on q.
func (p QuotaPatch) Apply(q *QuotaSpec) {
	if p.MaxCPUCores != nil {
		q.MaxCPUCores = *p.MaxCPUCores
	}
	if p.MaxRAMGB != nil {
		q.MaxRAMGB = *p.MaxRAMGB
	}
	if p.MaxInstances != nil {
		q.MaxInstances = *p.MaxInstances
	}
	if p.AllowCPUBurst != nil {
		q.AllowCPUBurst = *p.AllowCPUBurst
	}
	if p.AllowRAMBorrow != nil {
		q.AllowRAMBorrow = *p.AllowRAMBorrow
	}
	if p.MaxBurstPercent != nil {
		q.MaxBurstPercent = *p.MaxBurstPercent
	}
}
