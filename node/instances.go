package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/p2p"
	"github.com/rads-lang/constellation/sandbox"
)

// Collections written by the instance manager. Both follow the ownership rule: only the
// node that runs an instance writes its record, and only a node writes its own resources.
const (
	// CollInstances holds one InstanceRecord (JSON) per instance, keyed by instance name
	// (names are unique in the cluster).
	CollInstances = "instances"
	// CollResources holds one ResourceRecord (JSON) per node, keyed by peer ID.
	CollResources = "resources"
)

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

// Errors of the instance API (classified with errors.Is; the API maps them to statuses).
var (
	// ErrInstanceNotFound: no instance of that name in the cluster.
	ErrInstanceNotFound = errors.New("node: no such instance")
	// ErrInstanceExists: the name is taken somewhere in the cluster.
	ErrInstanceExists = errors.New("node: instance name already in use")
	// ErrInsufficientResources: the create does not fit the node's free resources.
	ErrInsufficientResources = errors.New("node: insufficient resources")
	// ErrInstancesUnavailable: this node cannot run instances (not root, no cgroups).
	ErrInstancesUnavailable = errors.New("node: instances unavailable on this node")
)

// InstanceRecord is an instance's replicated record (collection "instances") and one
// element of GET /v1/instances (`constellation list --json`).
type InstanceRecord struct {
	Name       string  `json:"name"`
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

	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// ResourceRecord is a node's resource accounting (collection "resources"), written by the
// node itself. CPU is in cpu_percent units (100 = one core).
type ResourceRecord struct {
	CPUCores        int     `json:"cpu_cores"`
	CPUCapacity     float64 `json:"cpu_capacity"` // cores*100 minus the reserve
	CPUAllocated    float64 `json:"cpu_allocated"`
	RAMTotalMB      int64   `json:"ram_total_mb"`
	RAMCapacityMB   int64   `json:"ram_capacity_mb"`
	RAMAllocatedMB  int64   `json:"ram_allocated_mb"`
	DiskTotalMB     int64   `json:"disk_total_mb"`
	DiskCapacityMB  int64   `json:"disk_capacity_mb"`
	DiskAllocatedMB int64   `json:"disk_allocated_mb"`
	Instances       int     `json:"instances"`
	Running         int     `json:"running"`
	Available       bool    `json:"instances_available"` // the node can run instances
	// Measured use of the running instances, sampled every usageInterval and rounded
	// (cpu to 1%, RAM to 16 MiB, disk to 64 MiB) so that small changes write nothing.
	CPUUsed    float64 `json:"cpu_used"`
	RAMUsedMB  int64   `json:"ram_used_mb"`
	DiskUsedMB int64   `json:"disk_used_mb"`
}

// instanceManager wires sandbox.Runtime into the node: it creates the runtime (lazily, so
// a node that never runs an instance mounts nothing), replicates instance status and the
// node's resource accounting, admits creates against free resources, and forwards
// operations on instances of other nodes (instances_fwd.go).
type instanceManager struct {
	n   *Node
	log *slog.Logger

	stateDir string // <data-dir>/sandbox
	codeDir  string // <data-dir>/code (uploaded scripts)

	capMu    sync.Mutex // guards capCache and capAt
	capCache capacity
	capAt    time.Time

	// opMu serialises admission + create so two creates cannot both take the last free
	// resources, and create/rm of one name against each other.
	opMu sync.Mutex

	mu      sync.Mutex // guards the following fields
	rt      instanceRuntime
	rtErr   error // why the runtime could not be opened (instances unavailable)
	meta    map[string]instanceMeta
	written map[string]string // name -> last record JSON written (skip identical writes)
	lastRes string
	usage   usage // last sampled use of the running instances (usageLoop)
	count   int
	closed  bool
	// hints remember where a create this node forwarded went, until the owner's record
	// arrives by replication (an rm right after a remote create must find it).
	hints map[string]fwdHint

	// openRuntime opens the runtime: sandbox.New, or a fake in tests (set before Start).
	openRuntime func(sandbox.Config) (instanceRuntime, error)
	// keepOnConflict, when set, tells checkConflict to leave a name claimed by two nodes
	// alone (deployment instances: their claim decides, see sched_agent.go).
	keepOnConflict func(name string) bool

	api    *instanceAPI   // the loopback listener for instances (instances_inner.go)
	fwdMux *http.ServeMux // serves forwarded requests: the instance routes only

	events  instanceEvents // status changes published as "instance" events
	changed chan string    // instance names changed by replication (for conflictLoop)
	stop    chan struct{}
	wg      sync.WaitGroup
}

// instanceMeta is what the node remembers about a local instance beyond the sandbox's
// state: persisted in <data-dir>/sandbox/meta/<name>.json so it survives restarts.
type instanceMeta struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	Script    string            `json:"script,omitempty"`
	Env       map[string]string `json:"env,omitempty"` // the user's env (without ours)
	Code      string            `json:"code,omitempty"`
	CodeOwned bool              `json:"code_owned,omitempty"` // a script upload dir to remove on rm
}

func newInstanceManager(n *Node) *instanceManager {
	return &instanceManager{
		n: n, log: n.log.With("component", "instances"),
		stateDir: filepath.Join(n.cfg.DataDir, "sandbox"),
		codeDir:  filepath.Join(n.cfg.DataDir, "code"),
		meta:     map[string]instanceMeta{}, written: map[string]string{}, hints: map[string]fwdHint{},
		fwdMux:  http.NewServeMux(),
		changed: make(chan string, 1024), stop: make(chan struct{}),
		openRuntime: openSandbox,
	}
}

// instanceRuntime is what the instance manager uses of *sandbox.Runtime. Tests substitute
// an in-memory fake (instanceManager.openRuntime) so that in-process clusters of many
// nodes run without root and without real processes.
type instanceRuntime interface {
	Create(spec sandbox.Spec) (sandbox.Info, error)
	Start(name string) (sandbox.Info, error)
	Stop(ctx context.Context, name string, grace time.Duration) error
	Restart(ctx context.Context, name string, grace time.Duration) (sandbox.Info, error)
	Destroy(ctx context.Context, name string, keepData bool) error
	Get(name string) (sandbox.Info, error)
	List() []sandbox.Info
	SetLimits(name string, l sandbox.Limits) (sandbox.Info, error)
	Stats(name string) (sandbox.Stats, error)
	Wait(ctx context.Context, name string) (sandbox.Exit, error)
	Logs(ctx context.Context, name string, opt sandbox.LogOptions) (io.ReadCloser, error)
	SaveSnapshot(ctx context.Context, instance, name string) (sandbox.Snapshot, error)
	RestoreSnapshot(ctx context.Context, instance, tag string) error
	GetSnapshot(instance, tag string) (sandbox.Snapshot, error)
	DiskQuotaMode() string
	Close() error
}

func openSandbox(c sandbox.Config) (instanceRuntime, error) {
	rt, err := sandbox.New(c)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return rt, nil
}

// start registers the forwarding protocol, serves the instances' API and, when this node
// already has instances, opens the runtime (which re-adopts them). It then reconciles the
// replicated records owned by this node with the runtime.
func (m *instanceManager) start() error {
	m.n.host.Libp2p().SetStreamHandler(m.protocol(), m.handleForward)
	api, err := startInstanceAPI(m)
	if err != nil {
		return err
	}
	m.api = api
	if ents, err := os.ReadDir(filepath.Join(m.stateDir, "instances")); err == nil && len(ents) > 0 {
		if _, err := m.runtime(); err != nil {
			m.log.Error("cannot re-adopt instances", "err", err)
		}
	}
	m.reconcile()
	m.wg.Add(1)
	go m.conflictLoop()
	return nil
}

// close stops supervising (instances keep running; the next start re-adopts them).
func (m *instanceManager) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	rt := m.rt
	m.mu.Unlock()
	close(m.stop)
	m.wg.Wait()
	if m.n.host != nil {
		m.n.host.Libp2p().RemoveStreamHandler(m.protocol())
	}
	if m.api != nil {
		m.api.close()
	}
	if rt != nil {
		if err := rt.Close(); err != nil {
			m.log.Warn("close sandbox runtime", "err", err)
		}
	}
}

// cgroupParent keeps each node's cgroups apart (several nodes may share a host in tests).
func cgroupParent(id peer.ID) string {
	sum := sha256.Sum256([]byte(id))
	return "constellation/node-" + hex.EncodeToString(sum[:6])
}

// runtime opens the sandbox runtime on first use.
func (m *instanceManager) runtime() (instanceRuntime, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rt != nil {
		return m.rt, nil
	}
	if m.closed {
		return nil, fmt.Errorf("%w: node is shutting down", ErrInstancesUnavailable)
	}
	if m.rtErr != nil {
		return nil, m.rtErr
	}
	if err := os.MkdirAll(m.codeDir, 0o755); err != nil {
		return nil, fmt.Errorf("node: code dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(m.stateDir, "meta"), 0o700); err != nil {
		return nil, fmt.Errorf("node: sandbox dir: %w", err)
	}
	roots := append([]string{m.codeDir}, m.n.cfg.CodeRoots...)
	env := map[string]string{"CONSTELLATION_NODE": m.n.cfg.Node}
	if m.api != nil {
		env["CONSTELLATION_API"] = m.api.url()
	}
	rt, err := m.openRuntime(sandbox.Config{
		StateDir:     m.stateDir,
		CodeRoots:    roots,
		CgroupParent: cgroupParent(m.n.host.ID()),
		DiskQuota:    m.n.cfg.DiskQuota,
		Env:          env,
		OnEvent:      m.onEvent,
		Logger:       m.log,
	})
	if err != nil {
		m.rtErr = fmt.Errorf("%w: %v", ErrInstancesUnavailable, err)
		return nil, m.rtErr
	}
	m.rt = rt
	m.loadMetaLocked()
	m.log.Info("instance runtime ready", "state", m.stateDir, "disk_quota", rt.DiskQuotaMode(), "instances", len(rt.List()))
	return rt, nil
}

// local returns the runtime if it is open (nil otherwise): instances exist only then.
func (m *instanceManager) local() instanceRuntime {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rt
}

func (m *instanceManager) metaPath(name string) string {
	return filepath.Join(m.stateDir, "meta", name+".json")
}

func (m *instanceManager) loadMetaLocked() {
	for _, in := range m.rt.List() {
		b, err := os.ReadFile(m.metaPath(in.Name))
		var md instanceMeta
		if err == nil {
			err = json.Unmarshal(b, &md)
		}
		if err != nil || md.ID == "" {
			md = instanceMeta{ID: newInstanceID(), CreatedAt: time.Now().UTC(), Env: userEnv(in.Spec.Env)}
		}
		m.meta[in.Name] = md
	}
}

func (m *instanceManager) saveMeta(name string, md instanceMeta) error {
	b, _ := json.Marshal(md)
	tmp := m.metaPath(name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, m.metaPath(name)); err != nil {
		return err
	}
	m.mu.Lock()
	m.meta[name] = md
	m.mu.Unlock()
	return nil
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ourEnv are the variables the node sets itself; they are not part of the user's spec.
var ourEnv = []string{"CONSTELLATION_INSTANCE", "CONSTELLATION_API_TOKEN"}

func userEnv(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for _, k := range ourEnv {
		delete(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ---- replicated records ----

// onEvent receives the runtime's lifecycle events (one goroutine, in order).
func (m *instanceManager) onEvent(ev sandbox.Event) {
	if ev.Type == sandbox.EventDestroyed {
		m.removeRecord(ev.Instance)
		return
	}
	m.syncRecord(ev.Instance)
}

// statusOf maps the sandbox's state and last exit to the API's status.
func statusOf(in sandbox.Info) (status string, code *int, reason string) {
	if in.LastExit != nil {
		c := in.LastExit.Code
		code, reason = &c, string(in.LastExit.Reason)
	}
	switch in.State {
	case sandbox.StateCreated:
		return InstanceCreated, code, reason
	case sandbox.StateRunning:
		return InstanceRunning, code, reason
	case sandbox.StateRestarting:
		return InstanceStarting, code, reason
	}
	ex := in.LastExit
	switch {
	case ex == nil:
		return InstanceExited, code, reason
	case ex.Reason == sandbox.ReasonOOMKilled:
		return InstanceOOMKilled, code, reason
	case ex.Stopped:
		return InstanceStopped, code, reason
	case ex.Reason == sandbox.ReasonExited && ex.Code == 0, ex.Reason == sandbox.ReasonUnknown:
		return InstanceExited, code, reason
	}
	return InstanceFailed, code, reason
}

// restartString renders a restart policy in the CLI's form.
func restartString(p sandbox.RestartPolicy) string {
	switch p.Policy {
	case "", sandbox.RestartNever:
		return sandbox.RestartNever
	case sandbox.RestartOnFailure:
		if p.MaxAttempts > 0 {
			return sandbox.RestartOnFailure + ":" + strconv.Itoa(p.MaxAttempts)
		}
	}
	return p.Policy
}

func (m *instanceManager) recordOf(in sandbox.Info, md instanceMeta) InstanceRecord {
	st, code, reason := statusOf(in)
	r := InstanceRecord{
		Name: in.Name, ID: md.ID, Node: m.n.cfg.Node, NodeID: m.n.host.ID().String(),
		Status: st, ExitCode: code, ExitReason: reason, Restarts: in.Restarts,
		CPUPercent: in.Spec.CPUPercent, CPUCores: in.Spec.CPUCores, RAMMB: in.Spec.RAMMB,
		DiskMB: in.Spec.DiskMB, PIDs: in.Spec.PIDs,
		Command: in.Spec.Command, Script: md.Script, Args: in.Spec.Args, Env: md.Env,
		Code: md.Code, Restart: restartString(in.Spec.Restart), Network: in.Spec.Network,
		CreatedAt: md.CreatedAt,
	}
	if md.Script != "" && md.CodeOwned {
		r.Code = "" // an uploaded script: its directory is an implementation detail
	}
	if in.State == sandbox.StateRunning && !in.StartedAt.IsZero() {
		t := in.StartedAt.UTC().Truncate(time.Millisecond)
		r.StartedAt = &t
	}
	return r
}

// syncRecord writes the replicated record of a local instance from the runtime's current
// view. Writers serialise on m.mu, and each reads the runtime inside it, so the last
// write always carries the newest state.
func (m *instanceManager) syncRecord(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rt == nil {
		return
	}
	in, err := m.rt.Get(name)
	if err != nil {
		return // destroyed meanwhile: the destroyed event removes the record
	}
	md, ok := m.meta[name]
	if !ok {
		return // being removed (a lost name conflict): the name is not ours to write
	}
	rec := m.recordOf(in, md)
	key := func(r InstanceRecord) string { r.UpdatedAt = time.Time{}; b, _ := json.Marshal(r); return string(b) }
	k := key(rec)
	if m.written[name] == k {
		return
	}
	rec.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	b, _ := json.Marshal(rec)
	m.n.mu.Lock()
	d, err := m.n.doc.PutLWW(CollInstances, name, b)
	if err == nil {
		m.n.publishLocked(d)
	}
	m.n.mu.Unlock()
	if err != nil {
		m.log.Error("write instance record", "instance", name, "err", err)
		return
	}
	m.written[name] = k
	m.writeResourcesLocked()
	m.noteRecord(rec)
}

// removeRecord deletes the record of an instance of this node.
func (m *instanceManager) removeRecord(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.written, name)
	delete(m.meta, name)
	removed := false
	m.n.mu.Lock()
	if v, _, ok := m.n.doc.GetLWW(CollInstances, name); ok {
		if r, err := decodeInstanceRecord(v); err == nil && r.NodeID == m.n.host.ID().String() {
			if d, err := m.n.doc.Remove(CollInstances, name); err == nil {
				m.n.publishLocked(d)
				removed = true
			}
		}
	}
	m.n.mu.Unlock()
	m.writeResourcesLocked()
	if removed {
		m.noteRemoved(name)
	}
}

// reconcile makes the replicated records owned by this node match the runtime: records of
// instances the runtime does not know are removed, every local instance is (re)written.
func (m *instanceManager) reconcile() {
	have := map[string]bool{}
	if rt := m.local(); rt != nil {
		for _, in := range rt.List() {
			have[in.Name] = true
		}
	}
	m.removeStale()
	for name := range have {
		m.syncRecord(name)
	}
	m.mu.Lock()
	m.writeResourcesLocked()
	m.mu.Unlock()
}

// removeStale removes records that name this node for instances it does not run, e.g.
// records that come back from peers after this node lost its state. An instance has meta
// before its first record is written, and records are written under m.mu, so holding m.mu
// the meta names are exactly the instances whose records may stand.
func (m *instanceManager) removeStale() {
	self := m.n.host.ID().String()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n.mu.Lock()
	defer m.n.mu.Unlock()
	for _, k := range m.n.doc.Keys(CollInstances) {
		if _, ok := m.meta[k]; ok {
			continue
		}
		v, _, ok := m.n.doc.GetLWW(CollInstances, k)
		if !ok {
			continue
		}
		if r, err := decodeInstanceRecord(v); err != nil || r.NodeID != self {
			continue
		}
		if d, err := m.n.doc.Remove(CollInstances, k); err == nil {
			m.n.publishLocked(d)
		}
	}
}

// onChangeLocked notes a replicated change of an instance record (n.mu held); the
// conflict loop checks it without n.mu.
func (m *instanceManager) onChangeLocked(c crdt.Change) {
	if c.Collection != CollInstances {
		return
	}
	m.noteChangeLocked(c)
	select {
	case m.changed <- c.Key:
	default: // the loop is behind; its periodic sweep covers every name
	}
}

// usage is the rounded measured use of a node's running instances.
type usage struct {
	cpu       float64
	ram, disk int64
}

// usageInterval paces the sampling of instance use for the resources record.
const usageInterval = 10 * time.Second

// sampleUsage sums the stats of the running instances, rounded (see ResourceRecord).
func sampleUsage(rt instanceRuntime) usage {
	var cpu, ram, disk float64
	for _, in := range rt.List() {
		if in.State != sandbox.StateRunning {
			continue
		}
		st, err := rt.Stats(in.Name)
		if err != nil {
			continue
		}
		cpu += st.CPUPercent
		ram += st.RAMMB
		disk += st.DiskMB
	}
	return usage{cpu: math.Round(cpu), ram: int64(math.Round(ram/16)) * 16, disk: int64(math.Round(disk/64)) * 64}
}

// conflictLoop resolves names claimed by two nodes (concurrent creates of one name), and
// samples the running instances' use into the resources record every usageInterval.
func (m *instanceManager) conflictLoop() {
	defer m.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	u := time.NewTicker(usageInterval)
	defer u.Stop()
	for {
		select {
		case <-m.stop:
			return
		case k := <-m.changed:
			m.checkConflict(k)
		case <-u.C:
			if rt := m.local(); rt != nil {
				us := sampleUsage(rt)
				m.mu.Lock()
				m.usage = us
				m.writeResourcesLocked()
				m.mu.Unlock()
			}
		case <-t.C:
			m.mu.Lock()
			names := make([]string, 0, len(m.meta))
			for k := range m.meta {
				names = append(names, k)
			}
			m.mu.Unlock()
			for _, k := range names {
				m.checkConflict(k)
			}
			m.removeStale()
		}
	}
}

// checkConflict: when another node's record holds a name this node also runs, the older
// create wins (created_at, then node ID). The loser stops and removes its instance
// (keeping its data: a later create of the name reuses it); the winner re-asserts its
// record. Every node decides the same way, so the cluster converges on one instance.
func (m *instanceManager) checkConflict(name string) {
	self := m.n.host.ID().String()
	m.mu.Lock()
	md, mine := m.meta[name]
	m.mu.Unlock()
	if !mine {
		return
	}
	r, ok := m.record(name)
	if !ok {
		m.reassert(name) // our record was removed (not by the rules): write it again
		return
	}
	if r.NodeID == self {
		return
	}
	if olderCreate(md.CreatedAt, self, r.CreatedAt, r.NodeID) {
		m.reassert(name)
		return
	}
	if m.keepOnConflict != nil && m.keepOnConflict(name) {
		return // a deployment instance: its claim decides which copy stays
	}
	m.log.Warn("instance name taken by an earlier create on another node: removing ours (data kept)",
		"instance", name, "winner", r.Node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rt := m.local(); rt != nil {
		m.mu.Lock()
		delete(m.written, name)
		delete(m.meta, name)
		m.mu.Unlock()
		_ = rt.Stop(ctx, name, 5*time.Second)
		if err := rt.Destroy(ctx, name, true); err != nil {
			m.log.Error("remove the losing copy of a duplicate instance", "instance", name, "err", err)
		}
		_ = os.Remove(m.metaPath(name))
	}
}

// olderCreate reports whether create a (at, node) wins over b: earlier, then lower ID.
func olderCreate(aAt time.Time, aNode string, bAt time.Time, bNode string) bool {
	if !aAt.Equal(bAt) {
		return aAt.Before(bAt)
	}
	return aNode < bNode
}

func (m *instanceManager) reassert(name string) {
	m.mu.Lock()
	delete(m.written, name)
	m.mu.Unlock()
	m.syncRecord(name)
}

func decodeInstanceRecord(b []byte) (InstanceRecord, error) {
	var r InstanceRecord
	if len(b) > 256<<10 {
		return r, fmt.Errorf("node: instance record of %d bytes exceeds 256 KiB", len(b))
	}
	err := json.Unmarshal(b, &r)
	return r, err
}

// record returns the replicated record of name.
func (m *instanceManager) record(name string) (InstanceRecord, bool) {
	m.n.mu.Lock()
	v, _, ok := m.n.doc.GetLWW(CollInstances, name)
	m.n.mu.Unlock()
	if !ok {
		return InstanceRecord{}, false
	}
	r, err := decodeInstanceRecord(v)
	return r, err == nil
}

// List returns every instance in the cluster, sorted by name, each with the status of its
// node as this node judges it (a dead node's instances keep their last written status).
func (m *instanceManager) list() []InstanceRecord {
	status := map[string]string{}
	for _, x := range m.n.Nodes() {
		status[x.ID] = x.Status
	}
	out := []InstanceRecord{}
	m.n.mu.Lock()
	for _, k := range m.n.doc.Keys(CollInstances) {
		v, _, ok := m.n.doc.GetLWW(CollInstances, k)
		if !ok {
			continue
		}
		r, err := decodeInstanceRecord(v)
		if err != nil {
			continue
		}
		r.NodeStatus = status[r.NodeID]
		if r.NodeStatus == "" {
			r.NodeStatus = "unknown"
		}
		out = append(out, r)
	}
	m.n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// instanceCount is the number of local instances (for the membership record).
func (m *instanceManager) instanceCount() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}

// ---- resources ----

// allocation sums the limits of local instances: CPU and RAM of those not exited (an
// exited instance uses neither), disk of all (their data stays).
type allocation struct {
	cpu       float64
	ram, disk int64
	instances int
	running   int
}

func allocationOf(infos []sandbox.Info, except string) allocation {
	var a allocation
	for _, in := range infos {
		a.instances++
		if in.State == sandbox.StateRunning {
			a.running++
		}
		if in.Name == except {
			continue
		}
		a.disk += in.Spec.DiskMB
		if in.State == sandbox.StateExited {
			continue
		}
		a.cpu += in.Spec.CPUPercent + 100*float64(in.Spec.CPUCores)
		a.ram += in.Spec.RAMMB
	}
	return a
}

// capacity is the node's total and allocatable resources (total minus the reserve).
type capacity struct {
	cores                 int
	cpuTotal, cpu         float64
	ramTotal, ram         int64
	diskTotal, disk       int64
	reserveCPU, reserveRA int64
}

// capacityTTL: totals are re-read (meminfo, statfs) at most this often.
const capacityTTL = 2 * time.Second

func (m *instanceManager) capacity() capacity {
	m.capMu.Lock()
	defer m.capMu.Unlock()
	if now := time.Now(); m.capAt.IsZero() || now.Sub(m.capAt) > capacityTTL {
		m.capCache, m.capAt = m.readCapacity(), now
	}
	return m.capCache
}

func (m *instanceManager) readCapacity() capacity {
	res := localResources(m.n.cfg.DataDir)
	c := capacity{cores: res.CPUCores, cpuTotal: float64(res.CPUCores) * 100,
		ramTotal: int64(res.RAMMB), diskTotal: int64(res.DiskMB)}
	c.cpu = math.Max(0, c.cpuTotal-m.n.cfg.ReserveCPUPercent)
	c.ram = max(0, c.ramTotal-reserveMB(m.n.cfg.ReserveRAMMB))
	c.disk = max(0, c.diskTotal-reserveMB(m.n.cfg.ReserveDiskMB))
	return c
}

func (m *instanceManager) resourceRecordLocked() ResourceRecord {
	c := m.capacity()
	var a allocation
	if m.rt != nil {
		a = allocationOf(m.rt.List(), "")
	}
	m.count = a.instances
	u := m.usage
	return ResourceRecord{
		CPUUsed: u.cpu, RAMUsedMB: u.ram, DiskUsedMB: u.disk,
		CPUCores: c.cores, CPUCapacity: c.cpu, CPUAllocated: a.cpu,
		RAMTotalMB: c.ramTotal, RAMCapacityMB: c.ram, RAMAllocatedMB: a.ram,
		DiskTotalMB: c.diskTotal, DiskCapacityMB: c.disk, DiskAllocatedMB: a.disk,
		Instances: a.instances, Running: a.running, Available: m.rtErr == nil,
	}
}

// writeResourcesLocked replicates the node's resource record when it changed (m.mu held).
func (m *instanceManager) writeResourcesLocked() {
	r := m.resourceRecordLocked()
	b, _ := json.Marshal(r)
	if string(b) == m.lastRes {
		return
	}
	m.n.mu.Lock()
	d, err := m.n.doc.PutLWW(CollResources, m.n.host.ID().String(), b)
	if err == nil {
		m.n.publishLocked(d)
	}
	m.n.mu.Unlock()
	if err == nil {
		m.lastRes = string(b)
	}
}

// fits checks limits against the node's free resources (ignoring instance except, whose
// own allocation is being replaced) and says what is asked and what is free.
func (m *instanceManager) fits(rt instanceRuntime, l sandbox.Limits, except string) error {
	c := m.capacity()
	m.n.lessReserved(&c) // capacity held by reservations on this node (sched_reserve.go)
	a := allocationOf(rt.List(), except)
	var short []string
	cpu := l.CPUPercent + 100*float64(l.CPUCores)
	if free := c.cpu - a.cpu; cpu > free {
		short = append(short, fmt.Sprintf("cpu: asked %s%%, free %s%% (capacity %s%% after a reserve of %s%%, allocated %s%%)",
			fmtNum(cpu), fmtNum(round(math.Max(0, free), 2)), fmtNum(round(c.cpu, 2)), fmtNum(round(m.n.cfg.ReserveCPUPercent, 2)), fmtNum(a.cpu)))
	}
	if free := c.ram - a.ram; l.RAMMB > free {
		short = append(short, fmt.Sprintf("ram_mb: asked %d, free %d (capacity %d after a reserve of %d, allocated %d)",
			l.RAMMB, max(0, free), c.ram, reserveMB(m.n.cfg.ReserveRAMMB), a.ram))
	}
	if free := c.disk - a.disk; l.DiskMB > free {
		short = append(short, fmt.Sprintf("disk_mb: asked %d, free %d (capacity %d after a reserve of %d, allocated %d)",
			l.DiskMB, max(0, free), c.disk, reserveMB(m.n.cfg.ReserveDiskMB), a.disk))
	}
	if len(short) > 0 {
		return fmt.Errorf("%w on node %s: %s", ErrInsufficientResources, m.n.cfg.Node, strings.Join(short, "; "))
	}
	return nil
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

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
	Name            string  `json:"name"`
	ID              string  `json:"id"`
	Status          string  `json:"status"`
	CPUTotal        int     `json:"cpu_total"`
	CPUAvailable    float64 `json:"cpu_available"`
	CPUFreePercent  float64 `json:"cpu_free_percent"` // what a create may still ask, in cpu_percent units
	RAMTotalGB      float64 `json:"ram_total_gb"`
	RAMAvailableGB  float64 `json:"ram_available_gb"`
	DiskTotalTB     float64 `json:"disk_total_tb"`
	DiskAvailableTB float64 `json:"disk_available_tb"`
	Instances       int     `json:"instances"`
	Running         int     `json:"running"`
	CanRun          bool    `json:"instances_available"`
	Reported        bool    `json:"reported"` // false: no resource record yet (totals from membership)
	// Measured use of its running instances (sampled every 10 s).
	CPUUsedPercent float64 `json:"cpu_used_percent"` // cpu_percent units
	RAMUsedGB      float64 `json:"ram_used_gb"`
	DiskUsedTB     float64 `json:"disk_used_tb"`
}

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// resources aggregates every node's resource record.
func (m *instanceManager) resources() ResourcesInfo {
	m.mu.Lock()
	m.writeResourcesLocked() // our own line is always current
	m.mu.Unlock()
	nodes := m.n.Nodes()
	out := ResourcesInfo{Nodes: []NodeResources{}}
	var cpuTot, cpuFree, ramTot, ramFree, diskTot, diskFree float64
	for _, x := range nodes {
		nr := NodeResources{Name: x.Name, ID: x.ID, Status: x.Status, CPUTotal: x.CPUTotal,
			RAMTotalGB: round(float64(x.RAMTotalMB)/1024, 2), DiskTotalTB: round(float64(x.DiskTotalMB)/(1<<20), 4)}
		m.n.mu.Lock()
		v, _, ok := m.n.doc.GetLWW(CollResources, x.ID)
		m.n.mu.Unlock()
		var r ResourceRecord
		if ok && json.Unmarshal(v, &r) == nil {
			nr.Reported = true
			nr.CPUTotal = r.CPUCores
			nr.RAMTotalGB = round(float64(r.RAMTotalMB)/1024, 2)
			nr.DiskTotalTB = round(float64(r.DiskTotalMB)/(1<<20), 4)
			nr.CPUFreePercent = math.Max(0, r.CPUCapacity-r.CPUAllocated)
			if r.CPUCores > 0 {
				nr.CPUAvailable = round(100*nr.CPUFreePercent/(100*float64(r.CPUCores)), 1)
			}
			nr.RAMAvailableGB = round(float64(max(0, r.RAMCapacityMB-r.RAMAllocatedMB))/1024, 2)
			nr.DiskAvailableTB = round(float64(max(0, r.DiskCapacityMB-r.DiskAllocatedMB))/(1<<20), 4)
			nr.Instances, nr.Running, nr.CanRun = r.Instances, r.Running, r.Available
			nr.CPUUsedPercent = r.CPUUsed
			nr.RAMUsedGB = round(float64(r.RAMUsedMB)/1024, 2)
			nr.DiskUsedTB = round(float64(r.DiskUsedMB)/(1<<20), 4)
		}
		out.Nodes = append(out.Nodes, nr)
		if x.Status != StatusAlive {
			continue
		}
		out.NodesAlive++
		out.CPUTotal += nr.CPUTotal
		out.Instances += nr.Instances
		cpuTot += 100 * float64(nr.CPUTotal)
		cpuFree += nr.CPUFreePercent
		ramTot += nr.RAMTotalGB
		ramFree += nr.RAMAvailableGB
		diskTot += nr.DiskTotalTB
		diskFree += nr.DiskAvailableTB
	}
	if cpuTot > 0 {
		out.CPUAvailable = round(100*cpuFree/cpuTot, 1)
	}
	out.RAMTotalGB, out.RAMAvailableGB = round(ramTot, 2), round(ramFree, 2)
	out.DiskTotalTB, out.DiskAvailableTB = round(diskTot, 4), round(diskFree, 4)
	return out
}

// defaultReserveCPU is the CPU kept for the OS and the node when none is configured.
func defaultReserveCPU() float64 { return math.Min(100, 10*float64(runtime.NumCPU())) }

// TeardownInstances destroys every instance of the node whose data dir is dataDir and
// releases what its runtime holds on the host (processes, cgroups, mounts, loop devices).
// The node must not be running. For decommissioning a machine, and for tests.
func TeardownInstances(ctx context.Context, dataDir string) error {
	stateDir := filepath.Join(dataDir, "sandbox")
	if _, err := os.Stat(filepath.Join(stateDir, "instances")); err != nil {
		return nil // never ran an instance
	}
	key, err := p2p.LoadIdentity(filepath.Join(dataDir, "identity.key"))
	if err != nil {
		return err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return err
	}
	rt, err := sandbox.New(sandbox.Config{StateDir: stateDir, CgroupParent: cgroupParent(id),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	return rt.Teardown(ctx)
}
