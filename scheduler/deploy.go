package scheduler

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sandbox"
	"github.com/rads-lang/constellation/sched"
)

// Collections of the leaderless Scheduler (see docs/scheduling.md). Intents are
// multi-writer LWW records; facts are written only by the node they are about.
const (
	// CollDeployments holds one DeploymentRecord per deployment name: a multi-writer intent
	// (the last write wins; undeploy writes a tombstone so a stale scale cannot revive it).
	CollDeployments = "deployments"
	// CollClaims holds one ClaimRecord per deployment instance name: where the deployment's
	// current owner placed it. Written by owners only.
	CollClaims = "claims"
	// CollRejections holds one RejectionRecord per "<instance>@<peer ID>": a target node's
	// refusal (or eviction, or repeated failure) of a claim. Written by that node only.
	CollRejections = "rejections"
	// CollDeployStatus holds the owner's last placement message per deployment.
	CollDeployStatus = "deploy_status"
	// CollReservations holds one ReservationRecord per reservation ID, written by the node
	// that holds it; any node may remove one (release).
	CollReservations = "reservations"
	// CollQuotas holds one QuotaRecord per namespace (multi-writer LWW).
	CollQuotas = "quotas"
	// CollQuotaRights holds the quota counters: bounded counters "<ns>/<dim>" (rights still
	// grantable) and grow-only counters "<ns>/minted/<dim>", "<ns>/burned/<dim>".
	CollQuotaRights = "quota_rights"
	// CollDrains holds one DrainRecord per node peer ID (multi-writer intent).
	CollDrains = "drains"
)

// Errors of the scheduling API.
var (
	// ErrDeploymentNotFound: no deployment of that name.
	ErrDeploymentNotFound = errors.New("node: no such deployment")
	// ErrReservationNotFound: no live reservation with that ID.
	ErrReservationNotFound = errors.New("node: no such reservation")
	// ErrQuotaExceeded: a namespace quota does not allow the request (sched.ErrQuota also
	// matches the typed errors that carry the numbers).
	ErrQuotaExceeded = errors.New("node: namespace quota exceeded")
)

// The scheduler's replicated records are encoded with the state codec (CBOR with integer
// keys, state.Encode): they are independent of the JSON API's field names, and a new field
// takes the next number (a number is never reused).

// Spec is a deployment's specification as replicated (api.DeploymentSpec, normalized).
type Spec struct {
	Name          string            `cbor:"1,keyasint,omitempty"`
	Instances     int               `cbor:"2,keyasint,omitempty"`
	CPUPercent    float64           `cbor:"3,keyasint,omitempty"`
	CPUCores      int               `cbor:"4,keyasint,omitempty"`
	RAMMB         int64             `cbor:"5,keyasint,omitempty"`
	DiskMB        int64             `cbor:"6,keyasint,omitempty"`
	PIDs          int64             `cbor:"7,keyasint,omitempty"`
	Command       []string          `cbor:"8,keyasint,omitempty"`
	Script        string            `cbor:"9,keyasint,omitempty"`
	ScriptContent string            `cbor:"10,keyasint,omitempty"`
	Args          []string          `cbor:"11,keyasint,omitempty"`
	Env           map[string]string `cbor:"12,keyasint,omitempty"`
	Code          string            `cbor:"13,keyasint,omitempty"`
	Strategy      string            `cbor:"14,keyasint,omitempty"`
	Constraints   []string          `cbor:"15,keyasint,omitempty"`
	Affinity      []string          `cbor:"16,keyasint,omitempty"`
	AntiAffinity  []string          `cbor:"17,keyasint,omitempty"`
	SpreadBy      string            `cbor:"18,keyasint,omitempty"`
	Labels        map[string]string `cbor:"19,keyasint,omitempty"`
	Namespace     string            `cbor:"20,keyasint,omitempty"`
	Priority      int               `cbor:"21,keyasint,omitempty"`
	Secrets       []string          `cbor:"22,keyasint,omitempty"` // names, never values
	// Service registers every instance in the mesh under this name, on ServicePort.
	Service         string `cbor:"23,keyasint,omitempty"`
	ServicePort     int    `cbor:"24,keyasint,omitempty"`
	ServiceProtocol string `cbor:"25,keyasint,omitempty"`
	HealthCheck     string `cbor:"26,keyasint,omitempty"`
	// MountFS are each instance's DFS views (PREFIX:TARGET[:ro], create's mount_fs).
	MountFS []string `cbor:"27,keyasint,omitempty"`
}

// specOf is the replicated form of a normalized API spec.
func specOf(a api.DeploymentSpec) Spec {
	return Spec{Name: a.Name, Instances: a.Instances, CPUPercent: a.CPUPercent, CPUCores: a.CPUCores, RAMMB: a.RAMMB,
		DiskMB: a.DiskMB, PIDs: a.PIDs, Command: a.Command, Script: a.Script, ScriptContent: a.ScriptContent,
		Args: a.Args, Env: a.Env, Code: a.Code, Strategy: a.Strategy, Constraints: a.Constraints, Affinity: a.Affinity,
		AntiAffinity: a.AntiAffinity, SpreadBy: a.SpreadBy, Labels: a.Labels, Namespace: a.Namespace,
		Priority: specPriority(&a), Secrets: a.Secrets, Service: a.Service, ServicePort: a.ServicePort,
		ServiceProtocol: a.ServiceProtocol, HealthCheck: a.HealthCheck, MountFS: a.MountFS}
}

// DeploymentRecord is a deployment's replicated intent (collection "deployments").
type DeploymentRecord struct {
	Spec       `cbor:"1,keyasint"`
	Generation int64  `cbor:"2,keyasint,omitempty"` // HLC wall time of the last write (ns)
	CreatedAt  int64  `cbor:"3,keyasint,omitempty"` // unix ms
	UpdatedAt  int64  `cbor:"4,keyasint,omitempty"`
	UpdatedBy  string `cbor:"5,keyasint,omitempty"`
	Deleted    bool   `cbor:"6,keyasint,omitempty"`
}

// ClaimRecord is an owner's placement of one deployment instance (collection "claims").
type ClaimRecord struct {
	Instance   string `cbor:"1,keyasint,omitempty"`
	Deployment string `cbor:"2,keyasint,omitempty"`
	Namespace  string `cbor:"3,keyasint,omitempty"`
	Slot       int    `cbor:"4,keyasint,omitempty"` // which of the desired instances it is (0..instances-1)
	Node       string `cbor:"5,keyasint,omitempty"`
	NodeID     string `cbor:"6,keyasint,omitempty"`
	ClaimID    string `cbor:"7,keyasint,omitempty"` // new for every decision, so a rejection names one decision
	Owner      string `cbor:"8,keyasint,omitempty"`
	At         int64  `cbor:"9,keyasint,omitempty"` // unix ms of the first placement of this slot's instance
	Priority   int    `cbor:"10,keyasint,omitempty"`
	Burst      bool   `cbor:"11,keyasint,omitempty"` // admitted above the base quota: preempted first
	CPUMilli   int64  `cbor:"12,keyasint,omitempty"`
	RAMMB      int64  `cbor:"13,keyasint,omitempty"`
	DiskMB     int64  `cbor:"14,keyasint,omitempty"`
	// Replaces names the instance this one replaces (drain: make-before-break).
	Replaces string `cbor:"15,keyasint,omitempty"`
	// Preempts lists instances on the target the target must evict first.
	Preempts []string `cbor:"16,keyasint,omitempty"`
	// Avoid lists nodes that refused this instance (placed there only if nothing else fits).
	Avoid []string `cbor:"17,keyasint,omitempty"`
	// Failover: this claim replaces Replaces because its node was lost (dead, or left longer
	// than the grace), not because of a drain. If that node comes back with the old
	// instance running, the old one stays and this one goes (placement is sticky).
	Failover bool `cbor:"18,keyasint,omitempty"`
}

// RejectionRecord is a target's answer to a claim it will not run (collection "rejections").
type RejectionRecord struct {
	Instance string `cbor:"1,keyasint,omitempty"`
	Node     string `cbor:"2,keyasint,omitempty"`
	NodeID   string `cbor:"3,keyasint,omitempty"`
	ClaimID  string `cbor:"4,keyasint,omitempty"`
	Code     string `cbor:"5,keyasint,omitempty"` // insufficient_resources, quota, preempted, failed, error
	Reason   string `cbor:"6,keyasint,omitempty"`
	At       int64  `cbor:"7,keyasint,omitempty"`
}

// DeployStatusRecord is the owner's last message about a deployment.
type DeployStatusRecord struct {
	Owner   string `cbor:"1,keyasint,omitempty"`
	Message string `cbor:"2,keyasint,omitempty"`
	At      int64  `cbor:"3,keyasint,omitempty"`
}

// DrainRecord marks a node draining (collection "drains", keyed by peer ID).
type DrainRecord struct {
	Node     string `cbor:"1,keyasint,omitempty"`
	Draining bool   `cbor:"2,keyasint,omitempty"`
	By       string `cbor:"3,keyasint,omitempty"`
	At       int64  `cbor:"4,keyasint,omitempty"`
}

var deployNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$`)

// maxDeployInstances bounds a deployment's instance count.
const maxDeployInstances = 10000

// resources returns the per-instance resources in sched units.
func specResources(s *Spec) sched.Resources {
	return sched.Resources{
		CPUMilli: sched.CPUPercent(s.CPUPercent) + sched.CPUCores(float64(s.CPUCores)),
		RAMMB:    s.RAMMB, DiskMB: s.DiskMB,
	}
}

func specPriority(s *api.DeploymentSpec) int {
	if s.Priority == nil {
		return sched.DefaultPriority
	}
	return int(*s.Priority)
}

// normalize checks a deployment spec and fills defaults; errors name the field.
func normalizeSpec(s *api.DeploymentSpec) error {
	if err := normalizeService(s); err != nil {
		return err
	}
	if !deployNameRE.MatchString(s.Name) {
		return httpapi.BadRequest(`invalid field "name" %q: 1-48 lowercase letters, digits or '-', starting and ending with a letter or digit (instances are named <name>-<index>)`, s.Name)
	}
	if s.Instances < 0 || s.Instances > maxDeployInstances {
		return httpapi.BadRequest(`invalid field "instances": %d; 0 to %d`, s.Instances, maxDeployInstances)
	}
	if s.CPUPercent < 0 || s.CPUPercent > 100*1024 {
		return httpapi.BadRequest(`invalid field "cpu_percent": %v; a percentage of one core, e.g. 25`, s.CPUPercent)
	}
	if s.CPUCores < 0 || s.CPUCores > 1024 {
		return httpapi.BadRequest(`invalid field "cpu_cores": %d; whole cores, e.g. 2`, s.CPUCores)
	}
	if s.CPUPercent != 0 && s.CPUCores != 0 {
		return httpapi.BadRequest(`give either "cpu_percent" or "cpu_cores", not both`)
	}
	if s.RAMGB != 0 {
		if s.RAMMB != 0 {
			return httpapi.BadRequest(`give either "ram_mb" or "ram_gb", not both`)
		}
		if s.RAMGB < 0 || s.RAMGB > 1<<20 {
			return httpapi.BadRequest(`invalid field "ram_gb": %v; a positive number of GiB, e.g. 4`, s.RAMGB)
		}
		s.RAMMB, s.RAMGB = int64(s.RAMGB*1024), 0
	}
	if s.RAMMB < 0 || s.DiskMB < 0 || s.PIDs < 0 {
		return httpapi.BadRequest(`fields "ram_mb", "disk_mb" and "pids" must not be negative`)
	}
	if s.RAMMB > 0 && s.RAMMB < sandbox.MinRAMMB {
		return httpapi.BadRequest(`invalid field "ram_mb": %d is below the minimum of %d MiB an instance needs to start`, s.RAMMB, sandbox.MinRAMMB)
	}
	if len(s.Command) == 0 && s.Script == "" {
		return httpapi.BadRequest(`one of "command" (an argv array, e.g. ["sh","-c","sleep 1000"]) or "script" (e.g. "app.rads") is required`)
	}
	if len(s.Command) > 0 && s.Script != "" {
		return httpapi.BadRequest(`give either "command" or "script", not both`)
	}
	for k := range s.Env {
		if strings.HasPrefix(k, "CONSTELLATION_") {
			return httpapi.BadRequest(`field "env": %s is set by the node; CONSTELLATION_* names are reserved`, k)
		}
	}
	st, err := sched.ParseStrategy(s.Strategy)
	if err != nil {
		return httpapi.BadRequest(`invalid field "strategy" %q: spread, binpack or random`, s.Strategy)
	}
	s.Strategy = string(st)
	if s.Strategy == "" {
		s.Strategy = string(sched.StrategySpread)
	}
	if _, err := sched.ParseConstraints(s.Constraints); err != nil {
		return httpapi.BadRequest(`invalid field "constraints": %v`, err)
	}
	if _, err := sched.ParseTerms(s.Affinity); err != nil {
		return httpapi.BadRequest(`invalid field "affinity": %v`, err)
	}
	if _, err := sched.ParseTerms(s.AntiAffinity); err != nil {
		return httpapi.BadRequest(`invalid field "anti_affinity": %v`, err)
	}
	if s.SpreadBy != "" && !labelKeyRE.MatchString(s.SpreadBy) {
		return httpapi.BadRequest(`invalid field "spread_by" %q: a node label key, e.g. region`, s.SpreadBy)
	}
	if s.Namespace == "" {
		s.Namespace = api.DefaultNamespace
	}
	if !api.ValidNamespace(s.Namespace) {
		return httpapi.BadRequest(`invalid field "namespace" %q: %s`, s.Namespace, api.NamespaceRule)
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if _, ok := s.Labels["service"]; !ok {
		s.Labels["service"] = s.Name
	}
	for k := range s.Labels {
		if !labelKeyRE.MatchString(k) {
			return httpapi.BadRequest(`invalid field "labels": key %q; letters, digits, '.', '_', '/', '-'`, k)
		}
	}
	if s.Priority != nil && (*s.Priority < sched.MinPriority || *s.Priority > sched.MaxPriority) {
		return httpapi.BadRequest(`invalid field "priority": %d; 0-100 or low, normal, high, critical`, *s.Priority)
	}
	return nil
}

var labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,63}$`)

// instanceName is "<deployment>-<index>".
func instanceName(dep string, index int) string { return dep + "-" + strconv.Itoa(index) }

// decodeRecord decodes an (untrusted) replicated record with the state codec.
func decodeRecord[T any](b []byte) (T, error) {
	var v T
	err := state.Decode(b, &v)
	return v, err
}
