package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/dfs/share"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/events"
	"github.com/rads-lang/constellation/internal/fsutil"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/mesh"
	"github.com/rads-lang/constellation/p2p"
	"github.com/rads-lang/constellation/p2p/liveness"
	"github.com/rads-lang/constellation/scheduler"
	"github.com/rads-lang/constellation/security"
	"github.com/rads-lang/constellation/telemetry"
	"github.com/rads-lang/constellation/telemetry/alert"
	"github.com/rads-lang/constellation/telemetry/metrics"
)

// Version is the constellation release this binary implements.
var Version = "0.0.4-dev"

var (
	// ErrNodeNotFound means no member of the cluster has the given name or ID.
	ErrNodeNotFound = membership.ErrNodeNotFound
	// ErrNodeUnavailable means the node is known but cannot be reached now.
	ErrNodeUnavailable = membership.ErrNodeUnavailable
)

// Node is one constellation node: replicated state, networking, failure detection, events
// and the local API, composed. New builds it, Start runs it, Close leaves the cluster.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	lock    *dirLock
	st      *state.Store
	host    *p2p.Host
	members *membership.Service
	events  *events.Bus
	api     *httpapi.Server
	// instances runs this node's instances and serves the instance API (package instances).
	instances *instances.Service
	// sched places deployments, holds reservations and enforces quotas (package scheduler).
	sched *scheduler.Scheduler
	// lt is the log store, the span store and their services (logs_traces.go).
	lt logsTraces
	// security holds tokens and roles, checks every request's permission and keeps the
	// audit log (package security).
	security *security.Service
	overview overviewCache // GET /v1/cluster/overview (ui_overview.go)
	// mesh is the service mesh (package mesh).
	mesh *mesh.Service
	// dfs is the distributed file system (node/dfs.go).
	dfs nodeDFS
	// shares are the shared directories on the DFS (node/dfs_share.go).
	shares *share.Manager
	// locks is the lock service (node/locks.go).
	locks nodeLocks
	// registry is the node's one Prometheus registry; tel serves it at GET /metrics, keeps
	// its samples and answers cluster-wide PromQL (package telemetry).
	registry *metrics.Registry
	tel      *telemetry.Service
	alerts   *alert.Service

	// APIAddr is the bound TCP API address when APIListen is set.
	APIAddr string
	// APIFingerprint is the TCP API's certificate fingerprint ("sha256:...") clients pin,
	// when APIListen is set (also in <data-dir>/api.fingerprint).
	APIFingerprint string
	// apiTCP is APIAddr and APIFingerprint for Status, which API handlers may call while
	// Start still runs.
	apiTCP atomic.Pointer[[2]string]

	// ctx is the node's one shutdown signal: cancelled first by Close, seen by every
	// service, API handler and background operation.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	clean     bool // shutdown flushed everything: the replica sequence may continue
	running   bool // Start ran
	// onChange, when set (OnStateChange), sees every key changed by a remote delta.
	onChange atomic.Pointer[func(collection, key string)]
}

// discoveryInterval spaces the DHT rendezvous lookups. Members learn each other's addresses
// from the membership records and dial them directly, so the DHT is a fallback for peers
// beyond them. One lookup moves about 70 KB per node in an idle 20-node cluster: at p2p's
// default of 30 s that was 2.2 KB/s per node, 30 times everything else an idle node sends
// (70 B/s); every 10 minutes it adds about 120 B/s.
const discoveryInterval = 10 * time.Minute

// New validates cfg, takes the data directory, loads the persisted state and builds the
// networking, but sends nothing until Start.
func New(cfg Config, log *slog.Logger) (n *Node, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	n = &Node{
		cfg: cfg, log: log, started: time.Now(), events: events.New(),
		done: make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	built := n // `return nil, err` clears n before this runs
	defer func() {
		if err != nil {
			built.releaseResources()
		}
	}()
	if n.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if log, err = n.openLogStore(log); err != nil {
		return nil, err
	}
	n.log = log
	// A data dir without an identity is new: only there may the state file be empty.
	_, idErr := os.Stat(filepath.Join(cfg.DataDir, "identity.key"))
	if n.st, err = state.Open(state.Options{Path: filepath.Join(cfg.DataDir, "state.db"), Cluster: cfg.Cluster,
		Log: log, SnapshotInterval: cfg.SnapshotInterval, Fresh: errors.Is(idErr, fs.ErrNotExist)}); err != nil {
		return nil, err
	}

	listen, err := p2p.ParseBind(cfg.Bind)
	if err != nil {
		return nil, &ConfigError{"bind", cfg.Bind, err.Error()}
	}
	var advertise []ma.Multiaddr
	if cfg.Advertise != "" {
		if advertise, err = p2p.ParseBind(cfg.Advertise); err != nil {
			return nil, &ConfigError{"advertise", cfg.Advertise, err.Error()}
		}
	}
	var join []p2p.JoinAddr
	for _, j := range cfg.Join {
		ja, err := p2p.ParseJoin(j)
		if err != nil {
			return nil, err
		}
		join = append(join, ja)
	}
	n.registry = metrics.NewRegistry(cfg.Node)
	n.host, err = p2p.New(p2p.Config{
		Cluster:             cfg.Cluster,
		ClusterKey:          cfg.ClusterKey,
		NodeName:            cfg.Node,
		Listen:              listen,
		Advertise:           advertise,
		Join:                join,
		MDNS:                !cfg.NoMDNS,
		NoPortMap:           cfg.NoPortMap,
		IdentityFile:        filepath.Join(cfg.DataDir, "identity.key"),
		Logger:              log,
		GossipBatch:         cfg.GossipBatch,
		AntiEntropyInterval: cfg.AntiEntropyInterval,
		DiscoveryInterval:   discoveryInterval,
		OnPeerAdmitted:      func(p peer.ID) { n.members.OnPeerAdmitted(p) },
		OnAddrsChanged:      func() { n.members.AddrsChanged() },
		OnPeerGone:          func(peer.ID) {},
		OnMessage:           n.onMessage,
		Metrics:             n.registry,
	})
	if err != nil {
		return nil, err
	}

	loaded, err := n.st.Load([]byte(n.host.ID()), newDeltaSizes(n.host, n.registry))
	if err != nil {
		return nil, err
	}
	if loaded > 0 {
		log.Info("resumed replicated state", "entries", loaded)
	}
	live, err := liveness.Profile(cfg.Liveness)
	if err != nil {
		return nil, err // Validate accepted it: cannot happen
	}
	n.members = membership.New(membership.Config{
		Name: cfg.Node, Labels: cfg.Labels, DataDir: cfg.DataDir, Version: Version, Liveness: live,
		InstanceCount: func() int { return n.instances.InstanceCount() },
		NAT: func() (string, string) {
			st := n.host.NAT()
			return st.Reachability, st.NATType
		},
		RTT: func() map[peer.ID]time.Duration {
			out := map[peer.ID]time.Duration{}
			for _, p := range n.host.Admitted() {
				if d := n.host.RTT(p); d > 0 {
					out[p] = d
				}
			}
			return out
		},
	}, n.host, n.st, n.events, log)
	n.api = httpapi.New(log, func() context.Context { return n.ctx })
	n.api.SetToken(cfg.APIToken)
	n.registerRoutes(n.api)
	if n.mesh, err = n.newMesh(); err != nil {
		return nil, err
	}
	defLimits, maxLimits := cfg.instanceLimits()
	n.instances = instances.New(n.ctx, instances.Config{
		Name: cfg.Node, DataDir: cfg.DataDir, ReserveCPUPercent: cfg.ReserveCPUPercent,
		ReserveRAMMB: cfg.ReserveRAMMB, ReserveDiskMB: cfg.ReserveDiskMB, CodeRoots: cfg.CodeRoots,
		DiskQuota: cfg.DiskQuota, DefaultLimits: defLimits, MaxLimits: maxLimits, AllowHostRoot: cfg.AllowHostRoot,
		DefaultNetwork: cfg.DefaultNetwork, Bridge: cfg.Bridge, BridgeSubnet: cfg.BridgeSubnet, Env: n.mesh.Env(),
		Output: n.lt.output, Metrics: n.registry,
	}, n.host, n.st, n.members, n.events, n.api, log)
	n.sched = scheduler.New(n.ctx, scheduler.Config{Name: cfg.Node, DataDir: cfg.DataDir, Metrics: n.registry},
		n.host, n.st, n.members, n.instances, n.api, log)
	n.instances.SetReservations(dfsLedger{n.sched, &n.dfs}) // the DFS block store is charged as reserved disk
	n.instances.SetKeepOnConflict(n.sched.IsDeploymentInstance)
	if err := n.startLogsTraces(log); err != nil {
		return nil, err
	}
	if n.security, err = n.newSecurity(); err != nil {
		return nil, err
	}
	n.instances.OnForwarded = n.auditForwarded
	n.instances.SetSecrets(n.security)
	n.sched.SetSecrets(n.security)
	n.security.SetWorkloads(workloads{n})
	n.newUI()
	if err := n.buildDFS(log); err != nil {
		return nil, err
	}
	if err := n.buildShares(log); err != nil {
		return nil, err
	}
	if n.tel, err = n.newTelemetry(); err != nil {
		return nil, err
	}
	acfg := alert.Config{Name: cfg.Node, Metrics: n.registry, Replicate: n.pushState}
	if cfg.ClusterKey != "" {
		acfg.Sealer = n.security // channel credentials enter the replicated state encrypted
	}
	n.alerts = alert.New(n.ctx, acfg, n.st, n.members,
		alert.EngineQuerier{Engine: n.tel.Engine(), Queryable: n.tel.Queryable()}, n.api, log)
	if err := n.buildLocks(log); err != nil {
		return nil, err
	}
	n.st.Watch(n.notifyChange) // tests' OnStateChange
	return n, nil
}

// Start joins the cluster and serves the local API.
func (n *Node) Start(ctx context.Context) error {
	n.running = true
	if err := n.api.ListenUnix(n.SocketPath()); err != nil {
		if errors.Is(err, httpapi.ErrInUse) {
			return fmt.Errorf("%w: %v", ErrDataDirInUse, err)
		}
		return err
	}
	if n.cfg.APIListen != "" {
		if n.api.Token() == "" {
			tok, err := loadOrCreateToken(filepath.Join(n.cfg.DataDir, "api.token"))
			if err != nil {
				return err
			}
			n.api.SetToken(tok)
		}
		host, _, _ := net.SplitHostPort(n.cfg.APIListen) // checked by Validate
		id, err := httpapi.LoadOrCreateTLS(n.cfg.DataDir, []string{host, n.cfg.Node}, n.log)
		if err != nil {
			return err
		}
		addr, err := n.api.ListenTCP(n.cfg.APIListen, id)
		if err != nil {
			return err
		}
		n.APIAddr, n.APIFingerprint = addr.String(), id.Fingerprint
		n.apiTCP.Store(&[2]string{n.APIAddr, n.APIFingerprint})
	}
	// The own record goes into the document before the host joins anyone, so the first
	// anti-entropy exchange (the bootstrap) already carries it to the peer we join.
	n.st.Start()
	n.members.WriteOwn(false)
	if err := n.host.Start(ctx, n.st); err != nil {
		return err
	}
	if err := n.members.Start(n.ctx); err != nil {
		return err
	}
	if err := n.instances.Start(); err != nil {
		return err
	}
	if err := n.sched.Start(); err != nil {
		return err
	}
	if err := n.security.Start(); err != nil {
		return err
	}
	if err := n.mesh.Start(); err != nil {
		return err
	}
	n.dfs.svc.Start()
	if err := n.startShares(); err != nil {
		return err
	}
	if err := n.tel.Start(); err != nil {
		return err
	}
	if err := n.alerts.Start(); err != nil {
		return err
	}
	attrs := []any{"name", n.cfg.Node, "id", n.host.ID().String(), "cluster", n.cfg.Cluster,
		"addrs", strings.Join(n.fullAddrs(), " "), "api", n.SocketPath()}
	if n.APIAddr != "" {
		attrs = append(attrs, "api_tcp", n.APIAddr, "api_fingerprint", n.APIFingerprint)
	}
	n.log.Info("node started", attrs...)
	return nil
}

// SocketPath is the local API's Unix socket.
func (n *Node) SocketPath() string { return filepath.Join(n.cfg.DataDir, "api.sock") }

// ID is this node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host exposes the networking layer (for tests and benchmarks).
func (n *Node) Host() *p2p.Host { return n.host }

// Done is closed when the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// Close leaves the cluster gracefully: the node's record says `left`, peers are told, state
// is flushed to disk. Safe to call twice.
func (n *Node) Close() error { return n.shutdown(true) }

// pushState runs one anti-entropy exchange with every admitted member, in parallel, until
// ctx ends, and returns how many completed: what this node just wrote is then on those
// members even if it dies the next moment (gossip alone gives no such point).
func (n *Node) pushState(ctx context.Context) int {
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, p := range n.host.Admitted() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.host.SyncWith(ctx, p) == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

// Kill stops the node without leaving, as a crash would (peers will judge it dead). For tests.
func (n *Node) Kill() error { return n.shutdown(false) }

func (n *Node) shutdown(graceful bool) error {
	var err error
	n.closeOnce.Do(func() {
		if n.running && graceful {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = n.members.Leave(ctx)
			// Gossip is fire-and-forget: on a loaded machine the batch holding the `left`
			// record may still be queued when the host closes, and with this node gone no
			// anti-entropy would ever deliver it (peers would call it dead, not left). So push
			// it to every admitted member by one anti-entropy exchange each, within the same
			// deadline; gossip stays the fast path.
			pctx, pcancel := context.WithTimeout(ctx, time.Second) // a frozen peer must not hold us
			n.pushState(pctx)
			pcancel()
			cancel()
		}
		// One shutdown signal: every service, handler and background operation sees it at
		// once (open event streams and `logs -f` end now, not after a timeout).
		if n.cancel != nil {
			n.cancel()
		}
		n.closeShares()
		n.closeDFS() // built last, closed first
		if n.mesh != nil {
			n.mesh.Close()
		}
		if n.security != nil && n.running {
			n.security.Stop()
		}
		if n.sched != nil && n.running {
			n.sched.Close()
		}
		if n.instances != nil {
			n.instances.Close()
		}
		if n.alerts != nil {
			n.alerts.Close()
		}
		n.overview.close() // its background metrics read, before telemetry goes
		if n.tel != nil {
			n.tel.Close()
		}
		if n.api != nil {
			n.api.Close()
		}
		if n.security != nil {
			n.security.Close()
		}
		n.closeLogsTraces()
		close(n.done)
		n.wg.Wait()
		n.clean = graceful
		err = n.releaseResources()
	})
	return err
}

func (n *Node) releaseResources() error {
	n.cancel()
	if n.mesh != nil {
		n.mesh.Close()
	}
	var errs []error
	if n.members != nil {
		errs = append(errs, n.members.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.st != nil {
		errs = append(errs, n.st.Close(n.clean))
	}
	n.closeLogsTraces() // New failed after opening them (else already done)
	n.lock.release()
	return errors.Join(errs...)
}

// notifyChange calls the OnStateChange hook (tests and benchmarks) for remote changes.
func (n *Node) notifyChange(changes []crdt.Change) {
	if fn := n.onChange.Load(); fn != nil {
		for _, c := range changes {
			(*fn)(c.Collection, c.Key)
		}
	}
}

// Nodes lists every member this node knows with its locally judged status and whether it
// is draining.
func (n *Node) Nodes() []api.NodeInfo {
	ns := n.members.Nodes()
	draining := n.sched.Draining()
	for i := range ns {
		ns[i].Draining = draining[ns[i].ID]
		n.addPath(&ns[i])
	}
	return ns
}

// addPath fills in how this node reaches x: connection type, transport, the address in
// use (else x's first announced one) and the round-trip time.
func (n *Node) addPath(x *api.NodeInfo) {
	if len(x.Addresses) > 0 {
		x.Address = x.Addresses[0]
	}
	if x.Self {
		return
	}
	id, err := peer.Decode(x.ID)
	if err != nil {
		return
	}
	if p, ok := n.host.Path(id); ok {
		x.Connection, x.Transport, x.Address = p.Type, p.Transport, p.Addr
	}
	if d := n.host.RTT(id); d > 0 {
		x.RTTMs = float64(d.Microseconds()) / 1000
	}
}

// Status describes this node.
func (n *Node) Status() api.StatusInfo {
	nodes := n.members.Nodes()
	keys := 0
	n.st.View(func(v *state.View) { keys = v.Len(CollNodes) })
	alive := 0
	for _, x := range nodes {
		if x.Status == api.StatusAlive {
			alive++
		}
	}
	labels := n.cfg.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	var tcp [2]string
	if p := n.apiTCP.Load(); p != nil {
		tcp = *p
	}
	st := api.StatusInfo{
		Name: n.cfg.Node, ID: n.host.ID().String(), Cluster: n.cfg.Cluster, Addresses: n.fullAddrs(),
		Labels: labels, NodesAlive: alive, NodesTotal: len(nodes), Admitted: len(n.host.Admitted()),
		Keyed: n.cfg.ClusterKey != "", Version: Version, UptimeS: time.Since(n.started).Seconds(),
		DataDir: n.cfg.DataDir, StateKeys: keys, APIAddr: tcp[0], APIFingerprint: tcp[1],
	}
	nat := n.host.NAT()
	st.Reachability, st.NATType, st.RelayService = nat.Reachability, nat.NATType, nat.RelayService
	st.ObservedAddrs = []string{}
	for _, a := range nat.Observed {
		st.ObservedAddrs = append(st.ObservedAddrs, a.String())
	}
	st.Relays = []api.RelayReservation{}
	for _, r := range nat.Relays {
		name, ok := n.members.NameOf(r.Relay.String())
		if !ok {
			name = r.Relay.String()
		}
		st.Relays = append(st.Relays, api.RelayReservation{Relay: name, ID: r.Relay.String(), Expires: r.Expires.UTC()})
	}
	return st
}

func (n *Node) fullAddrs() []string {
	as := n.host.Addrs()
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// ---- messages ----

// wireMessage is the payload of a cluster message (type + JSON data).
type wireMessage struct {
	Data json.RawMessage `json:"d"`
}

// Send delivers a message event to one node (at least once; receivers de-duplicate by ID).
func (n *Node) Send(ctx context.Context, nameOrID, typ string, data json.RawMessage) (api.SendResult, error) {
	id, name, err := n.members.Resolve(nameOrID)
	if err != nil {
		return api.SendResult{}, err
	}
	if id == n.host.ID() {
		mid := newMessageID()
		n.deliver(p2p.Message{ID: mid, Type: typ, From: id, Data: data, At: time.Now()})
		return api.SendResult{ID: mid, Nodes: []string{name}}, nil
	}
	mid, err := n.host.Send(ctx, id, typ, data)
	if err != nil {
		return api.SendResult{ID: mid}, fmt.Errorf("%w: send to %s: %w", ErrNodeUnavailable, name, err)
	}
	return api.SendResult{ID: mid, Nodes: []string{name}}, nil
}

// Broadcast delivers a message event to every admitted node and to this one.
func (n *Node) Broadcast(ctx context.Context, typ string, data json.RawMessage) (api.SendResult, error) {
	targets := n.host.Admitted()
	mid, err := n.host.Broadcast(ctx, typ, data)
	names := []string{n.cfg.Node}
	n.deliver(p2p.Message{ID: mid, Type: typ, From: n.host.ID(), Data: data, At: time.Now()})
	for _, p := range targets {
		if nm, ok := n.members.NameOf(p.String()); ok {
			names = append(names, nm)
		} else {
			names = append(names, p.String())
		}
	}
	if err != nil {
		return api.SendResult{ID: mid, Nodes: names}, fmt.Errorf("%w: broadcast: %w", ErrNodeUnavailable, err)
	}
	return api.SendResult{ID: mid, Nodes: names}, nil
}

func (n *Node) onMessage(m p2p.Message) { n.deliver(m) }

func (n *Node) deliver(m p2p.Message) {
	data := json.RawMessage(m.Data)
	if !json.Valid(data) {
		b, _ := json.Marshal(string(m.Data))
		data = b
	}
	fromName, _ := n.members.NameOf(m.From.String())
	n.events.Publish(api.Event{Type: api.EventMessage, Time: m.At.UTC(), Msg: &api.MessageEvent{
		ID: m.ID, Type: m.Type, From: m.From.String(), FromName: fromName, Data: data,
	}})
}

func newMessageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := fsutil.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node: write API token: %w", err)
	}
	return tok, nil
}

// CollNodes is the membership collection (one record per node, keyed by peer ID).
const CollNodes = membership.Coll

// Errors of the data dir and state file.
var (
	// ErrDataDirInUse means another running node holds the data directory.
	ErrDataDirInUse = state.ErrDataDirInUse
	// ErrWrongCluster means the data dir holds another cluster's state.
	ErrWrongCluster = state.ErrWrongCluster
)

// CorruptStateError says the state file cannot be read and how to recover.
type CorruptStateError = state.CorruptStateError

// get reads an LWW register of the replicated document.
func (n *Node) get(coll, key string) ([]byte, bool) {
	var b []byte
	var ok bool
	n.st.View(func(v *state.View) { b, _, ok = v.GetLWW(coll, key) })
	return b, ok
}
