package instances

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
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/events"
	"github.com/rads-lang/constellation/internal/fsutil"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
	"github.com/rads-lang/constellation/sandbox"
)

// Collections written by the instance manager. Both follow the ownership rule: only the
// node that runs an instance writes its record, and only a node writes its own resources.
const (
	// Coll holds one Record per instance, keyed by instance name
	// (names are unique in the cluster).
	Coll = "instances"
	// CollResources holds one ResourceRecord per node, keyed by peer ID.
	CollResources = "resources"
)

// Errors of the instance API (classified with errors.Is; the API maps them to statuses).
var (
	// ErrNotFound: no instance of that name in the cluster.
	ErrNotFound = errors.New("node: no such instance")
	// ErrExists: the name is taken somewhere in the cluster.
	ErrExists = errors.New("node: instance name already in use")
	// ErrInsufficientResources: the create does not fit the node's free resources.
	ErrInsufficientResources = errors.New("node: insufficient resources")
	// ErrUnavailable: this node cannot run instances (not root, no cgroups).
	ErrUnavailable = errors.New("node: instances unavailable on this node")
)

// Record is an instance's replicated record (collection "instances"), encoded with the
// state codec (CBOR, integer keys). The API shows it as api.Instance (Info); a new field
// takes the next number, a number is never reused.
type Record struct {
	Name       string  `cbor:"1,keyasint,omitempty"`
	ID         string  `cbor:"2,keyasint,omitempty"` // random, unique per create
	Node       string  `cbor:"3,keyasint,omitempty"` // name of the node running it
	NodeID     string  `cbor:"4,keyasint,omitempty"` // its peer ID
	NodeStatus string  `cbor:"5,keyasint,omitempty"`
	Status     string  `cbor:"6,keyasint,omitempty"`
	ExitCode   *int    `cbor:"7,keyasint,omitempty"` // null until the first exit
	ExitReason string  `cbor:"8,keyasint,omitempty"`
	Restarts   int     `cbor:"9,keyasint,omitempty"`
	CPUPercent float64 `cbor:"10,keyasint,omitempty"`
	CPUCores   int     `cbor:"11,keyasint,omitempty"`
	RAMMB      int64   `cbor:"12,keyasint,omitempty"`
	DiskMB     int64   `cbor:"13,keyasint,omitempty"`
	PIDs       int64   `cbor:"14,keyasint,omitempty"`
	// Program, as given at create.
	Command []string          `cbor:"15,keyasint,omitempty"`
	Script  string            `cbor:"16,keyasint,omitempty"`
	Args    []string          `cbor:"17,keyasint,omitempty"`
	Env     map[string]string `cbor:"18,keyasint,omitempty"`
	Code    string            `cbor:"19,keyasint,omitempty"`
	Restart string            `cbor:"20,keyasint,omitempty"` // never | on-failure[:N] | always
	Network string            `cbor:"21,keyasint,omitempty"`

	CreatedAt time.Time  `cbor:"22,keyasint,omitempty"`
	StartedAt *time.Time `cbor:"23,keyasint,omitempty"`
	UpdatedAt time.Time  `cbor:"24,keyasint,omitempty"`
	// Stamp is the hybrid logical clock time of the create (wall ns, logical): of two
	// creates of one name, the earlier stamp wins. Unlike wall clocks of different nodes,
	// a stamp is after everything its node had seen when it created the instance.
	StampWall    int64  `cbor:"25,keyasint,omitempty"`
	StampLogical uint32 `cbor:"26,keyasint,omitempty"`
	// Namespace groups instances; empty in records of nodes that predate namespaces
	// (shown as api.DefaultNamespace).
	Namespace string `cbor:"27,keyasint,omitempty"`
	// Publish are the published ports (HOSTPORT:PORT/PROTO) and IP the address on the
	// node bridge (network bridge).
	Publish []string `cbor:"28,keyasint,omitempty"`
	IP      string   `cbor:"29,keyasint,omitempty"`
	// Grants are what the instance's token may do beyond its own instance (authz.go).
	Grants []string `cbor:"30,keyasint,omitempty"`
	// CreatedBy and CreatorID name the instance that created this one through its API
	// (empty: an admin caller or a deployment); the creator manages its children.
	CreatedBy string `cbor:"31,keyasint,omitempty"`
	CreatorID string `cbor:"32,keyasint,omitempty"`
	// Secrets are the names of the secrets the instance gets as env vars (never values).
	Secrets []string `cbor:"33,keyasint,omitempty"`
	// MetricsPort is where the instance serves Prometheus metrics (0: none).
	MetricsPort int `cbor:"34,keyasint,omitempty"`
	// Deployment is the deployment the instance belongs to (empty: a standalone instance).
	Deployment string `cbor:"35,keyasint,omitempty"`
	// MountFS are the instance's DFS views (PREFIX:TARGET[:ro], fsmounts.go).
	MountFS []string `cbor:"36,keyasint,omitempty"`
}

// ResourceRecord is a node's resource accounting (collection "resources"), written by the
// node itself. CPU is in cpu_percent units (100 = one core).
type ResourceRecord struct {
	CPUCores        int     `cbor:"1,keyasint,omitempty"`
	CPUCapacity     float64 `cbor:"2,keyasint,omitempty"` // cores*100 minus the reserve
	CPUAllocated    float64 `cbor:"3,keyasint,omitempty"`
	RAMTotalMB      int64   `cbor:"4,keyasint,omitempty"`
	RAMCapacityMB   int64   `cbor:"5,keyasint,omitempty"`
	RAMAllocatedMB  int64   `cbor:"6,keyasint,omitempty"`
	DiskTotalMB     int64   `cbor:"7,keyasint,omitempty"`
	DiskCapacityMB  int64   `cbor:"8,keyasint,omitempty"`
	DiskAllocatedMB int64   `cbor:"9,keyasint,omitempty"`
	Instances       int     `cbor:"10,keyasint,omitempty"`
	Running         int     `cbor:"11,keyasint,omitempty"`
	Available       bool    `cbor:"12,keyasint,omitempty"` // the node can run instances
	// Measured use of the running instances, sampled every usageInterval and rounded
	// (cpu to 1%, RAM to 16 MiB, disk to 64 MiB) so that small changes write nothing.
	CPUUsed    float64 `cbor:"13,keyasint,omitempty"`
	RAMUsedMB  int64   `cbor:"14,keyasint,omitempty"`
	DiskUsedMB int64   `cbor:"15,keyasint,omitempty"`
	// Held by live reservations on the node (not free for creates nor placements).
	CPUReserved    float64 `cbor:"16,keyasint,omitempty"`
	RAMReservedMB  int64   `cbor:"17,keyasint,omitempty"`
	DiskReservedMB int64   `cbor:"18,keyasint,omitempty"`
}

// Service wires sandbox.Runtime into the node: it creates the runtime (lazily, so
// a node that never runs an instance mounts nothing), replicates instance status and the
// node's resource accounting, admits creates against free resources, and forwards
// operations on instances of other nodes (fwd.go).
type Service struct {
	cfg     Config
	host    Host
	st      *state.Store
	members Members
	bus     *events.Bus
	api     *httpapi.Server
	log     *slog.Logger
	ctx     context.Context // the node's shutdown signal
	resv    Reservations    // set by SetReservations before Start; nil: no reservations

	stateDir string // <data-dir>/sandbox
	codeDir  string // <data-dir>/code (uploaded scripts)

	capMu    sync.Mutex // guards capCache and capAt
	capCache capacity
	capAt    time.Time

	// opMu serialises admission + create so two creates cannot both take the last free
	// resources, and create/rm of one name against each other.
	opMu sync.Mutex

	mu      sync.Mutex // guards the following fields
	rt      Runtime
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

	// OpenRuntime opens the runtime: sandbox.New, or a fake in tests (set before Start).
	OpenRuntime func(sandbox.Config) (Runtime, error)
	// secrets gives instances their secrets (SetSecrets).
	secrets Secrets
	// fsMounts gives instances their DFS views (SetFSMounts); mountMeta holds the meta of
	// instances with views by name, for startMounts.
	fsMounts  FSMounter
	mountMeta sync.Map
	// secretNames holds the meta of instances with secrets by name, for startEnv: the
	// runtime calls it holding its own lock, so it must not take mu (lock order).
	secretNames sync.Map
	// OnForwarded, when set, sees every mutating request another node forwarded here once
	// it is answered (the audit log; set before Start).
	OnForwarded func(Forwarded)
	// keepOnConflict, when set, tells checkConflict to leave a name claimed by two nodes
	// alone (deployment instances: their claim decides, see scheduler.IsDeploymentInstance).
	keepOnConflict func(name string) bool

	inner *instanceAPI // the instances' API sockets (inner.go)

	metrics *serviceMetrics // metrics.go
	oomMu   sync.Mutex      // guards ooms (metrics.go)
	ooms    map[string]int  // runs ended by the OOM killer per instance, since the node started
	fwdMux  *http.ServeMux  // serves forwarded requests: the instance routes only
	fwd     *p2p.Service    // the forwarding protocol (fwd.go)

	events  instanceEvents // status changes published as "instance" events
	changed chan string    // instance names changed by replication (for conflictLoop)
	stop    chan struct{}
	wg      sync.WaitGroup
}

// instanceMeta is what the node remembers about a local instance beyond the sandbox's
// state: persisted in <data-dir>/sandbox/meta/<name>.json so it survives restarts.
type instanceMeta struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	// StampWall and StampLogical are the create's HLC time (Record.StampWall).
	StampWall    int64             `json:"stamp_wall,omitempty"`
	StampLogical uint32            `json:"stamp_logical,omitempty"`
	Script       string            `json:"script,omitempty"`
	Env          map[string]string `json:"env,omitempty"` // the user's env (without ours)
	Code         string            `json:"code,omitempty"`
	CodeOwned    bool              `json:"code_owned,omitempty"` // a script upload dir to remove on rm
	Namespace    string            `json:"namespace,omitempty"`  // empty: created before namespaces (default)
	Grants       []string          `json:"grants,omitempty"`     // the token's grants (authz.go)
	CreatedBy    string            `json:"created_by,omitempty"` // the creating instance, if any
	CreatorID    string            `json:"creator_id,omitempty"` // and its ID
	Secrets      []string          `json:"secrets,omitempty"`    // secret names (env at each start)
	MetricsPort  int               `json:"metrics_port,omitempty"`
	Deployment   string            `json:"deployment,omitempty"` // set by the scheduler
	MountFS      []string          `json:"mount_fs,omitempty"`   // DFS views (fsmounts.go)
}

// Config configures the instance service.
type Config struct {
	Name    string // this node's name
	DataDir string
	// Reserves kept for the OS and the node (negative: none); see node.Config.
	ReserveCPUPercent float64
	ReserveRAMMB      int64
	ReserveDiskMB     int64
	CodeRoots         []string
	DiskQuota         string
	// DefaultLimits apply to every dimension a create leaves unset (0); MaxLimits bound what
	// any instance may ask (0: no bound). Nothing an instance causes is unlimited unless
	// the operator sets a default of 0.
	DefaultLimits sandbox.Limits
	MaxLimits     sandbox.Limits
	// AllowHostRoot lets creates ask for host_root (no user namespace: uid 0 is host root).
	AllowHostRoot bool
	// Instance networking (sandbox.Config): default mode, bridge name and subnet.
	DefaultNetwork, Bridge, BridgeSubnet string
	// Output, when set, also receives the instances' output (sandbox.Config.Output): the
	// node's log store.
	Output sandbox.OutputSink
	// Env is added to every instance's environment (the mesh's CONSTELLATION_MESH).
	Env map[string]string
	// Metrics receives the service's collectors (metrics.go; nil: a private registry).
	Metrics prometheus.Registerer
}

// Host is what the instance service needs of the p2p host.
type Host interface {
	ID() peer.ID
	NewService(name string, cfg p2p.ServiceConfig, h p2p.Handler) (*p2p.Service, error)
}

// Members is what the instance service needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
	Resolve(nameOrID string) (peer.ID, string, error)
}

// Reservations is what the instance service needs of the scheduler's reservations: the
// capacity they hold on this node, and creates that run on a reservation.
type Reservations interface {
	// Reserved is what live reservations hold on this node (except those being consumed).
	Reserved() (cpuPercent float64, ramMB, diskMB int64)
	// PrepareReservedCreate fills a create's target and resources from its reservation.
	PrepareReservedCreate(req *api.CreateRequest) error
	// CreateReserved creates an instance on this node from a reservation it holds.
	CreateReserved(ctx context.Context, req *api.CreateRequest) (Record, error)
}

// New builds the instance service; its routes go on srv.
// ctx is the node's shutdown signal: background operations and forwarded calls end with it.
func New(ctx context.Context, cfg Config, h Host, st *state.Store, members Members, bus *events.Bus, srv *httpapi.Server, log *slog.Logger) *Service {
	m := &Service{
		cfg: cfg, host: h, st: st, members: members, bus: bus, api: srv, ctx: ctx,
		log:      log.With("component", "instances"),
		stateDir: filepath.Join(cfg.DataDir, "sandbox"),
		codeDir:  filepath.Join(cfg.DataDir, "code"),
		meta:     map[string]instanceMeta{}, written: map[string]string{}, hints: map[string]fwdHint{},
		fwdMux:  http.NewServeMux(),
		changed: make(chan string, 1024), stop: make(chan struct{}),
		OpenRuntime: openSandbox,
	}
	m.metrics = newServiceMetrics(cfg.Metrics)
	st.Watch(func(cs []crdt.Change) {
		for _, c := range cs {
			m.onChange(c)
		}
	}, Coll)
	m.registerRoutes(srv.Handle)
	m.registerRoutes(func(p string, h http.HandlerFunc) {
		m.fwdMux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			if m.guard(w, r, p) {
				h(w, r)
			}
		})
	})
	srv.SetGuard(m.guard) // instance callers: every route of the node's API (authz.go)
	return m
}

// Secrets is what the instance service needs of the secrets store (package security).
type Secrets interface {
	// CheckSecrets reports whether every name is an existing secret of namespace ns.
	CheckSecrets(ns string, names []string) error
	// SecretEnv decrypts the latest values of names in ns.
	SecretEnv(ns string, names []string) (map[string]string, error)
	// SecretFiles decrypts the latest values of the file references ("NAME:file") in ns.
	SecretFiles(ns string, names []string) (map[string][]byte, error)
	// CheckNamespace refuses a deleted namespace (creates in it fail, nothing made).
	CheckNamespace(ns string) error
}

// SetSecrets connects the secrets store (before Start).
func (m *Service) SetSecrets(s Secrets) { m.secrets = s }

// startEnv is the runtime's StartEnv: an instance's secrets, decrypted at each start on
// this node only (never written to its spec, meta or record).
func (m *Service) startEnv(name string) (map[string]string, error) {
	v, ok := m.secretNames.Load(name)
	if !ok {
		return nil, nil
	}
	md := v.(instanceMeta)
	if m.secrets == nil {
		return nil, errors.New("node: the instance has secrets but no secrets store is connected")
	}
	return m.secrets.SecretEnv(md.Namespace, md.Secrets)
}

// startFiles is the runtime's StartFiles: the instance's file secrets ("NAME:file"),
// decrypted at each start on this node only, for its /run/secrets.
func (m *Service) startFiles(name string) (map[string][]byte, error) {
	v, ok := m.secretNames.Load(name)
	if !ok {
		return nil, nil
	}
	md := v.(instanceMeta)
	if m.secrets == nil {
		return nil, errors.New("node: the instance has secrets but no secrets store is connected")
	}
	return m.secrets.SecretFiles(md.Namespace, md.Secrets)
}

// SetReservations connects the scheduler's reservations (before Start).
func (m *Service) SetReservations(r Reservations) { m.resv = r }

// SetKeepOnConflict sets fn to tell the conflict check to leave a name claimed by two nodes
// alone (deployment instances: their claim decides). Before Start.
func (m *Service) SetKeepOnConflict(fn func(name string) bool) { m.keepOnConflict = fn }

// get reads an LWW register of the replicated document.
func (m *Service) get(coll, key string) ([]byte, bool) {
	var b []byte
	var ok bool
	m.st.View(func(v *state.View) { b, _, ok = v.GetLWW(coll, key) })
	return b, ok
}

// lessReserved lowers c by what reservations hold on this node.
func (m *Service) lessReserved(c *capacity) {
	if m.resv == nil {
		return
	}
	cpu, ram, disk := m.resv.Reserved()
	c.cpu = math.Max(0, c.cpu-cpu)
	c.ram = max(0, c.ram-ram)
	c.disk = max(0, c.disk-disk)
}

// Runtime is what the instance service uses of *sandbox.Runtime. Tests substitute
// an in-memory fake (Service.openRuntime) so that in-process clusters of many
// nodes run without root and without real processes.
type Runtime interface {
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
	ListSnapshots(instance string) ([]sandbox.Snapshot, error)
	DeleteSnapshot(instance, tag string) error
	StopSignal(ctx context.Context, name string, sig syscall.Signal, grace time.Duration) error
	// RunDir is the host directory the instance sees at /run/constellation; WriteRunFile
	// writes a file there (owned by the instance's root, with perm).
	RunDir(name string) (string, error)
	WriteRunFile(name, file string, data []byte, perm os.FileMode) error
	DiskQuotaMode() string
	Close() error
}

func openSandbox(c sandbox.Config) (Runtime, error) {
	rt, err := sandbox.New(c)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return rt, nil
}

// Start registers the forwarding protocol, serves the instances' API and, when this node
// already has instances, opens the runtime (which re-adopts them). It then reconciles the
// replicated records owned by this node with the runtime.
func (m *Service) Start() error {
	if err := m.startForwarding(); err != nil {
		return err
	}
	api, err := startInstanceAPI(m)
	if err != nil {
		return err
	}
	m.inner = api
	if ents, err := os.ReadDir(filepath.Join(m.stateDir, "instances")); err == nil && len(ents) > 0 {
		if rt, err := m.runtime(); err != nil {
			m.log.Error("cannot re-adopt instances", "err", err)
		} else {
			for _, in := range rt.List() {
				if err := m.inner.attach(rt, in.Name); err != nil {
					m.log.Error("instance API socket", "instance", in.Name, "err", err)
				}
			}
		}
	}
	m.reconcile()
	m.wg.Add(1)
	go m.conflictLoop()
	return nil
}

// Close stops supervising (instances keep running; the next Start re-adopts them).
func (m *Service) Close() {
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
	if m.fwd != nil {
		_ = m.fwd.Close() // removes the handler, then waits for forwarded requests in flight
	}
	if m.inner != nil {
		m.inner.close()
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
func (m *Service) runtime() (Runtime, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rt != nil {
		return m.rt, nil
	}
	if m.closed {
		return nil, fmt.Errorf("%w: node is shutting down", ErrUnavailable)
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
	roots := append([]string{m.codeDir}, m.cfg.CodeRoots...)
	env := instanceEnv()
	env["CONSTELLATION_NODE"] = m.cfg.Name
	for k, v := range m.cfg.Env {
		env[k] = v
	}
	rt, err := m.OpenRuntime(sandbox.Config{
		StateDir:       m.stateDir,
		DefaultUID:     defaultUID,
		DefaultGID:     defaultUID,
		CodeRoots:      roots,
		CgroupParent:   cgroupParent(m.host.ID()),
		DiskQuota:      m.cfg.DiskQuota,
		AllowHostRoot:  m.cfg.AllowHostRoot,
		Env:            env,
		StartEnv:       m.startEnv,
		StartFiles:     m.startFiles,
		StartMounts:    m.startMounts,
		DefaultNetwork: m.cfg.DefaultNetwork,
		Bridge:         m.cfg.Bridge,
		BridgeSubnet:   m.cfg.BridgeSubnet,
		OnEvent:        m.onEvent,
		Output:         m.cfg.Output,
		Logger:         m.log,
	})
	if err != nil {
		m.rtErr = fmt.Errorf("%w: %v", ErrUnavailable, err)
		return nil, m.rtErr
	}
	m.rt = rt
	m.loadMetaLocked()
	m.log.Info("instance runtime ready", "state", m.stateDir, "disk_quota", rt.DiskQuotaMode(), "instances", len(rt.List()))
	return rt, nil
}

// local returns the runtime if it is open (nil otherwise): instances exist only then.
func (m *Service) local() Runtime {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rt
}

func (m *Service) metaPath(name string) string {
	return filepath.Join(m.stateDir, "meta", name+".json")
}

func (m *Service) loadMetaLocked() {
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
		m.noteSecrets(in.Name, md)
	}
}

func (m *Service) noteSecrets(name string, md instanceMeta) {
	if len(md.MountFS) == 0 {
		m.mountMeta.Delete(name)
	} else {
		m.mountMeta.Store(name, md)
	}
	if len(md.Secrets) == 0 {
		m.secretNames.Delete(name)
		return
	}
	m.secretNames.Store(name, md)
}

func (m *Service) saveMeta(name string, md instanceMeta) error {
	b, _ := json.Marshal(md)
	if err := fsutil.WriteFile(m.metaPath(name), b, 0o600); err != nil {
		return err
	}
	m.mu.Lock()
	m.meta[name] = md
	m.mu.Unlock()
	m.noteSecrets(name, md)
	return nil
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ourEnv are the variables the node sets itself; they are not part of the user's spec
// (CONSTELLATION_API_TOKEN: in the specs of instances created before the token file).
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
func (m *Service) onEvent(ev sandbox.Event) {
	m.countOOM(ev)
	m.releaseMountsOn(ev)
	if ev.Type == sandbox.EventDestroyed {
		if m.inner != nil {
			m.inner.detach(ev.Instance)
		}
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
		return api.InstanceCreated, code, reason
	case sandbox.StateRunning:
		return api.InstanceRunning, code, reason
	case sandbox.StateRestarting:
		return api.InstanceStarting, code, reason
	}
	ex := in.LastExit
	switch {
	case ex == nil:
		return api.InstanceExited, code, reason
	case ex.Reason == sandbox.ReasonOOMKilled:
		return api.InstanceOOMKilled, code, reason
	case ex.Stopped:
		return api.InstanceStopped, code, reason
	case ex.Reason == sandbox.ReasonExited && ex.Code == 0, ex.Reason == sandbox.ReasonUnknown:
		return api.InstanceExited, code, reason
	}
	return api.InstanceFailed, code, reason
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

func (m *Service) recordOf(in sandbox.Info, md instanceMeta) Record {
	st, code, reason := statusOf(in)
	r := Record{
		Name: in.Name, ID: md.ID, Node: m.cfg.Name, NodeID: m.host.ID().String(),
		Status: st, ExitCode: code, ExitReason: reason, Restarts: in.Restarts,
		CPUPercent: in.Spec.CPUPercent, CPUCores: in.Spec.CPUCores, RAMMB: in.Spec.RAMMB,
		DiskMB: in.Spec.DiskMB, PIDs: in.Spec.PIDs,
		Command: in.Spec.Command, Script: md.Script, Args: in.Spec.Args, Env: md.Env,
		Code: md.Code, Restart: restartString(in.Spec.Restart), Network: in.Spec.Network,
		CreatedAt: md.CreatedAt, StampWall: md.StampWall, StampLogical: md.StampLogical,
		Namespace: md.Namespace, IP: in.IP, Grants: md.Grants, CreatedBy: md.CreatedBy, CreatorID: md.CreatorID,
		Secrets:     md.Secrets,
		MetricsPort: md.MetricsPort, Deployment: md.Deployment, MountFS: md.MountFS,
	}
	for _, p := range in.Spec.Publish {
		r.Publish = append(r.Publish, p.String())
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
func (m *Service) syncRecord(name string) {
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
	key := func(r Record) string { r.UpdatedAt = time.Time{}; b, _ := json.Marshal(r); return string(b) }
	k := key(rec)
	if m.written[name] == k {
		return
	}
	rec.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	b, err := EncodeRecord(rec)
	if err != nil {
		m.log.Error("encode instance record", "instance", name, "err", err)
		return
	}
	err = m.st.Update(func(tx *state.Tx) error { return tx.Put(Coll, name, b) })
	if err != nil {
		m.log.Error("write instance record", "instance", name, "err", err)
		return
	}
	m.written[name] = k
	m.writeResourcesLocked()
	m.noteRecord(rec)
}

// removeRecord deletes the record of an instance of this node.
func (m *Service) removeRecord(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.written, name)
	delete(m.meta, name)
	removed := false
	_ = m.st.Update(func(tx *state.Tx) error {
		if v, _, ok := tx.GetLWW(Coll, name); ok {
			if r, err := DecodeRecord(v); err == nil && r.NodeID == m.host.ID().String() {
				removed = tx.Remove(Coll, name) == nil
			}
		}
		return nil
	})
	m.writeResourcesLocked()
	if removed {
		m.noteRemoved(name)
	}
}

// reconcile makes the replicated records owned by this node match the runtime: records of
// instances the runtime does not know are removed, every local instance is (re)written.
func (m *Service) reconcile() {
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
func (m *Service) removeStale() {
	self := m.host.ID().String()
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.st.Update(func(tx *state.Tx) error {
		for _, k := range tx.Keys(Coll) {
			if _, ok := m.meta[k]; ok {
				continue
			}
			v, _, ok := tx.GetLWW(Coll, k)
			if !ok {
				continue
			}
			if r, err := DecodeRecord(v); err != nil || r.NodeID != self {
				continue
			}
			_ = tx.Remove(Coll, k)
		}
		return nil
	})
}

// onChange notes a replicated change of an instance record.
func (m *Service) onChange(c crdt.Change) {
	if c.Collection != Coll {
		return
	}
	m.noteChange(c)
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
func sampleUsage(rt Runtime) usage {
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
func (m *Service) conflictLoop() {
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
func (m *Service) checkConflict(name string) {
	self := m.host.ID().String()
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
	if olderCreate(createStamp{md.StampWall, md.StampLogical, md.CreatedAt, self},
		createStamp{r.StampWall, r.StampLogical, r.CreatedAt, r.NodeID}) {
		m.reassert(name)
		return
	}
	if m.keepOnConflict != nil && m.keepOnConflict(name) {
		return // a deployment instance: its claim decides which copy stays
	}
	m.log.Warn("instance name taken by an earlier create on another node: removing ours (data kept)",
		"instance", name, "winner", r.Node)
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
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

// olderCreate reports whether create a wins over b: the earlier HLC stamp (wall clock
// times only when one of them predates stamps), then the lower node ID.
func olderCreate(a, b createStamp) bool {
	if a.wall != 0 && b.wall != 0 {
		if a.wall != b.wall {
			return a.wall < b.wall
		}
		if a.logical != b.logical {
			return a.logical < b.logical
		}
	} else if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.node < b.node
}

func (m *Service) reassert(name string) {
	m.mu.Lock()
	delete(m.written, name)
	m.mu.Unlock()
	m.syncRecord(name)
}

// EncodeRecord encodes an instance record for the replicated document.
func EncodeRecord(r Record) ([]byte, error) { return state.Encode(r) }

// DecodeRecord decodes an (untrusted) instance record.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	err := state.Decode(b, &r)
	return r, err
}

// Info is the record as the API shows it.
func (r Record) Info() api.Instance {
	return api.Instance{
		Name: r.Name, ID: r.ID, Node: r.Node, NodeID: r.NodeID, NodeStatus: r.NodeStatus, Status: r.Status,
		ExitCode: r.ExitCode, ExitReason: r.ExitReason, Restarts: r.Restarts, CPUPercent: r.CPUPercent,
		CPUCores: r.CPUCores, RAMMB: r.RAMMB, DiskMB: r.DiskMB, PIDs: r.PIDs, Command: r.Command,
		Script: r.Script, Args: r.Args, Env: r.Env, Code: r.Code, Restart: r.Restart, Network: r.Network,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt, Namespace: r.namespace(),
		Publish: r.Publish, IP: r.IP, Grants: r.Grants, CreatedBy: r.CreatedBy, Secrets: r.Secrets,
		MetricsPort: r.MetricsPort, Deployment: r.Deployment, MountFS: r.MountFS,
	}
}

// namespace is the record's namespace, the default for records without one.
func (r Record) namespace() string {
	if r.Namespace == "" {
		return api.DefaultNamespace
	}
	return r.Namespace
}

// createStamp orders creates of one name (olderCreate).
type createStamp struct {
	wall    int64
	logical uint32
	at      time.Time // legacy records without a stamp
	node    string
}

// record returns the replicated record of name.
func (m *Service) record(name string) (Record, bool) {
	v, ok := m.get(Coll, name)
	if !ok {
		return Record{}, false
	}
	r, err := DecodeRecord(v)
	return r, err == nil
}

// List returns every instance in the cluster in natural name order (web-2 before web-10), each with the status of its
// node as this node judges it (a dead node's instances keep their last written status).
func (m *Service) List() []Record {
	status := map[string]string{}
	for _, x := range m.members.Nodes() {
		status[x.ID] = x.Status
	}
	out := []Record{}
	m.st.View(func(v *state.View) {
		for _, k := range v.Keys(Coll) {
			b, _, ok := v.GetLWW(Coll, k)
			if !ok {
				continue
			}
			r, err := DecodeRecord(b)
			if err != nil {
				continue
			}
			r.NodeStatus = status[r.NodeID]
			if r.NodeStatus == "" {
				r.NodeStatus = "unknown"
			}
			out = append(out, r)
		}
	})
	sort.Slice(out, func(i, j int) bool { return naturalCompare(out[i].Name, out[j].Name) < 0 })
	return out
}

// instanceCount is the number of local instances (for the membership record).
func (m *Service) InstanceCount() int {
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

func (m *Service) capacity() capacity {
	m.capMu.Lock()
	defer m.capMu.Unlock()
	if now := time.Now(); m.capAt.IsZero() || now.Sub(m.capAt) > capacityTTL {
		m.capCache, m.capAt = m.readCapacity(), now
	}
	return m.capCache
}

func (m *Service) readCapacity() capacity {
	res := membership.LocalResources(m.cfg.DataDir)
	c := capacity{cores: res.CPUCores, cpuTotal: float64(res.CPUCores) * 100,
		ramTotal: int64(res.RAMMB), diskTotal: int64(res.DiskMB)}
	c.cpu = math.Max(0, c.cpuTotal-m.cfg.ReserveCPUPercent)
	c.ram = max(0, c.ramTotal-max(0, m.cfg.ReserveRAMMB))
	c.disk = max(0, c.diskTotal-max(0, m.cfg.ReserveDiskMB))
	return c
}

func (m *Service) resourceRecordLocked() ResourceRecord {
	c := m.capacity()
	var a allocation
	if m.rt != nil {
		a = allocationOf(m.rt.List(), "")
	}
	m.count = a.instances
	u := m.usage
	var rcpu float64
	var rram, rdisk int64
	if m.resv != nil {
		rcpu, rram, rdisk = m.resv.Reserved()
	}
	return ResourceRecord{
		CPUReserved: rcpu, RAMReservedMB: rram, DiskReservedMB: rdisk,
		CPUUsed: u.cpu, RAMUsedMB: u.ram, DiskUsedMB: u.disk,
		CPUCores: c.cores, CPUCapacity: c.cpu, CPUAllocated: a.cpu,
		RAMTotalMB: c.ramTotal, RAMCapacityMB: c.ram, RAMAllocatedMB: a.ram,
		DiskTotalMB: c.diskTotal, DiskCapacityMB: c.disk, DiskAllocatedMB: a.disk,
		Instances: a.instances, Running: a.running, Available: m.rtErr == nil,
	}
}

// writeResourcesLocked replicates the node's resource record when it changed (m.mu held).
func (m *Service) writeResourcesLocked() {
	r := m.resourceRecordLocked()
	b, err := state.Encode(r)
	if err != nil {
		m.log.Error("encode resource record", "err", err)
		return
	}
	if string(b) == m.lastRes {
		return
	}
	err = m.st.Update(func(tx *state.Tx) error { return tx.Put(CollResources, m.host.ID().String(), b) })
	if err == nil {
		m.lastRes = string(b)
	}
}

// fits checks limits against the node's free resources (ignoring instance except, whose
// own allocation is being replaced) and says what is asked and what is free.
func (m *Service) fits(rt Runtime, l sandbox.Limits, except string) error {
	c := m.capacity()
	m.lessReserved(&c) // capacity held by reservations on this node (Reservations.Reserved)
	a := allocationOf(rt.List(), except)
	var short []string
	cpu := l.CPUPercent + 100*float64(l.CPUCores)
	if free := c.cpu - a.cpu; cpu > free {
		short = append(short, fmt.Sprintf("cpu: asked %s%%, free %s%% (capacity %s%% after a reserve of %s%%, allocated %s%%)",
			fmtNum(cpu), fmtNum(round(math.Max(0, free), 2)), fmtNum(round(c.cpu, 2)), fmtNum(round(m.cfg.ReserveCPUPercent, 2)), fmtNum(a.cpu)))
	}
	if free := c.ram - a.ram; l.RAMMB > free {
		short = append(short, fmt.Sprintf("ram_mb: asked %d, free %d (capacity %d after a reserve of %d, allocated %d)",
			l.RAMMB, max(0, free), c.ram, max(0, m.cfg.ReserveRAMMB), a.ram))
	}
	if free := c.disk - a.disk; l.DiskMB > free {
		short = append(short, fmt.Sprintf("disk_mb: asked %d, free %d (capacity %d after a reserve of %d, allocated %d)",
			l.DiskMB, max(0, free), c.disk, max(0, m.cfg.ReserveDiskMB), a.disk))
	}
	if len(short) > 0 {
		return fmt.Errorf("%w on node %s: %s", ErrInsufficientResources, m.cfg.Name, strings.Join(short, "; "))
	}
	return nil
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// resources aggregates every node's resource record.
func (m *Service) resources() api.ResourcesInfo {
	m.mu.Lock()
	m.writeResourcesLocked() // our own line is always current
	m.mu.Unlock()
	nodes := m.members.Nodes()
	out := api.ResourcesInfo{Nodes: []api.NodeResources{}}
	var cpuTot, cpuFree, ramTot, ramFree, diskTot, diskFree float64
	for _, x := range nodes {
		nr := api.NodeResources{Name: x.Name, ID: x.ID, Status: x.Status, CPUTotal: x.CPUTotal,
			RAMTotalGB: round(float64(x.RAMTotalMB)/1024, 2), DiskTotalTB: round(float64(x.DiskTotalMB)/(1<<20), 4)}
		v, ok := m.get(CollResources, x.ID)
		var r ResourceRecord
		if ok && state.Decode(v, &r) == nil {
			nr.Reported = true
			nr.CPUTotal = r.CPUCores
			nr.RAMTotalGB = round(float64(r.RAMTotalMB)/1024, 2)
			nr.DiskTotalTB = round(float64(r.DiskTotalMB)/(1<<20), 4)
			nr.CPUFreePercent = math.Max(0, r.CPUCapacity-r.CPUAllocated-r.CPUReserved)
			if r.CPUCores > 0 {
				nr.CPUAvailable = round(100*nr.CPUFreePercent/(100*float64(r.CPUCores)), 1)
			}
			nr.RAMAvailableGB = round(float64(max(0, r.RAMCapacityMB-r.RAMAllocatedMB-r.RAMReservedMB))/1024, 2)
			nr.DiskAvailableTB = round(float64(max(0, r.DiskCapacityMB-r.DiskAllocatedMB-r.DiskReservedMB))/(1<<20), 4)
			nr.CPUReservedPercent = r.CPUReserved
			nr.RAMReservedGB = round(float64(r.RAMReservedMB)/1024, 2)
			nr.Instances, nr.Running, nr.CanRun = r.Instances, r.Running, r.Available
			nr.CPUUsedPercent = r.CPUUsed
			nr.RAMUsedGB = round(float64(r.RAMUsedMB)/1024, 2)
			nr.DiskUsedTB = round(float64(r.DiskUsedMB)/(1<<20), 4)
		}
		out.Nodes = append(out.Nodes, nr)
		if x.Status != api.StatusAlive {
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

// DefaultReserveCPU is the CPU kept for the OS and the node when none is configured.
func DefaultReserveCPU() float64 { return math.Min(100, 10*float64(runtime.NumCPU())) }

// Teardown destroys every instance of the node whose data dir is dataDir and
// releases what its runtime holds on the host (processes, cgroups, mounts, loop devices).
// The node must not be running. For decommissioning a machine, and for tests.
func Teardown(ctx context.Context, dataDir string) error {
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

// DecodeResources decodes an (untrusted) resource record.
func DecodeResources(b []byte) (ResourceRecord, error) {
	var r ResourceRecord
	err := state.Decode(b, &r)
	return r, err
}
