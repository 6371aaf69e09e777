package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/events"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/mesh/balance/balancemetrics"
	"github.com/rads-lang/constellation/p2p"
)

// Config configures the mesh of one node.
type Config struct {
	// Name is this node's name; Labels its labels (zone, region: locality and geo_proximity).
	Name   string
	Labels map[string]string
	// DataDir holds mesh-tls.json (enable-mtls).
	DataDir string
	// ListenAddr is the loopback entry point for instances ("127.0.0.1:0" by default;
	// "off" disables it).
	ListenAddr string
	// ExecChecks allows exec:CMD health checks on this node. Off by default, as Consul's
	// enable_script_checks: the command runs on the node as the node's user, so whoever may
	// register a service (services:write, or deployments:write through deploy
	// --health-check) could otherwise run commands as the node.
	ExecChecks bool
	// Metrics receives the mesh's collectors (nil: a private registry).
	Metrics prometheus.Registerer
	// TracerProvider makes the spans of calls and hops (nil: no spans).
	TracerProvider trace.TracerProvider
	// Now and rand are injected in tests (nil: the real ones).
	Now func() time.Time
	// CheckNamespace, when set, refuses a registration (Register) in a namespace that does
	// not exist (node: the security service's check).
	CheckNamespace func(ns string) error
}

// Host is what the mesh needs of the member-only libp2p host.
type Host interface {
	ID() peer.ID
	Listen(name string) (*p2p.Listener, error)
	DialStream(ctx context.Context, p peer.ID, pid protocol.ID) (*p2p.Conn, error)
	ProtocolID(name string) protocol.ID
	RTT(p peer.ID) time.Duration
}

// Members is what the mesh needs of membership.
type Members interface {
	NameOf(id string) (string, bool)
	Nodes() []api.NodeInfo
}

// InstanceInfo is what the mesh needs to know of a local instance.
type InstanceInfo struct {
	Name      string
	Namespace string
	NodeID    string
	Status    string // running, stopped, exited, failed, ...
	Network   string // host, bridge, none
	IP        string // on the bridge
}

// Instances looks up instances (node adapts the instance service).
type Instances interface {
	LookupInstance(name string) (InstanceInfo, bool)
}

// DeploymentService is the mesh registration a deployment asks for its instances.
type DeploymentService struct {
	Deployment, Service, Namespace, Protocol, HealthCheck string
	Port                                                  int
}

// Deployments tells which service a deployment instance registers (node adapts the scheduler).
type Deployments interface {
	ServiceOf(instance string) (DeploymentService, bool)
}

// Endpoint is one endpoint as the index holds it.
type Endpoint struct {
	Key  string
	Peer peer.ID
	Rec  EndpointRecord
}

// ID is the endpoint's short ID (node/instance-or-port).
func (e Endpoint) ID() string {
	if e.Rec.Instance != "" {
		return e.Rec.Node + "/" + e.Rec.Instance
	}
	return fmt.Sprintf("%s/:%d", e.Rec.Node, e.Rec.Port)
}

// Addr is host:port as the hosting node dials it.
func (e Endpoint) Addr() string {
	return net.JoinHostPort(e.Rec.Host, fmt.Sprint(e.Rec.Port))
}

type serviceEntry struct {
	cfg ServiceRecord
	eps []Endpoint
}

// index is an immutable snapshot of the registry: resolving a name is a map read.
type index struct {
	services   map[string]*serviceEntry // NAMESPACE/NAME
	byKey      map[string]Endpoint
	intentions map[string]IntentionRecord // FROM>TO
}

// Service is the mesh of one node.
type Service struct {
	cfg     Config
	ctx     context.Context
	host    Host
	st      *state.Store
	members Members
	insts   Instances
	deps    Deployments
	bus     *events.Bus
	log     *slog.Logger
	self    peer.ID
	now     func() time.Time
	tracer  trace.Tracer

	idx atomic.Pointer[index]

	mu      sync.Mutex
	checks  map[string]*checker // local endpoints' health checkers by key
	closed  bool
	tlsConf atomic.Pointer[tlsState]

	metrics *metrics
	spans   *spanTable
	hop     *hopServer
	hopL    *p2p.Listener // registered in New: the protocol is in the node's first identify
	pool    *pool
	local   *localListener
	calls   *caller
	isocks  instSockets
	served  handlerGroup // handlers of the three servers (entry, sockets, hop)

	wg   sync.WaitGroup
	stop chan struct{}
}

// New builds the mesh; Start serves it.
func New(ctx context.Context, cfg Config, h Host, st *state.Store, members Members, insts Instances,
	deps Deployments, bus *events.Bus, srv *httpapi.Server, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Service{cfg: cfg, ctx: ctx, host: h, st: st, members: members, insts: insts, deps: deps, bus: bus,
		log: log.With("svc", "mesh"), self: h.ID(), now: cfg.Now, tracer: tp.Tracer("github.com/rads-lang/constellation/mesh"),
		checks: map[string]*checker{}, stop: make(chan struct{}), isocks: instSockets{socks: map[string]*instSocket{}}}
	var err error
	if m.metrics, err = newMetrics(reg, cfg.Now); err != nil {
		return nil, err
	}
	m.spans = newSpanTable(m.tracer, cfg.Now)
	m.pool = newPool(m)
	m.calls = newCaller(m)
	// Breaker states, ejections, in-flight calls, latency estimates and retry budgets of
	// every service's balancer, read at scrape time.
	if err := reg.Register(balancemetrics.New(m.calls.each)); err != nil {
		return nil, err
	}
	m.loadTLS()
	m.rebuild()
	if m.hopL, err = h.Listen(hopProtocol); err != nil {
		return nil, err
	}
	st.Watch(func([]crdt.Change) { m.rebuild() }, CollEndpoints, CollServices, CollIntentions)
	if cfg.ListenAddr != "off" {
		if m.local, err = listenLocal(m, cfg.ListenAddr); err != nil {
			m.hopL.Close()
			return nil, err
		}
	}
	if srv != nil {
		m.routes(srv)
	}
	return m, nil
}

// LocalAddr is the loopback entry point (CONSTELLATION_MESH), "" when off.
func (m *Service) LocalAddr() string {
	if m.local == nil {
		return ""
	}
	return m.local.addr
}

// Env is what the mesh adds to every instance's environment.
func (m *Service) Env() map[string]string {
	env := map[string]string{}
	if _, ok := m.insts.(RunSockets); ok {
		env["CONSTELLATION_MESH_SOCKET"] = socketInside
	}
	if m.local != nil {
		env["CONSTELLATION_MESH"] = m.local.addr
	}
	return env
}

// Start serves the hop protocol and the local entry point and starts health checking.
func (m *Service) Start() error {
	m.mu.Lock()
	m.hop = startHop(m, m.hopL)
	m.mu.Unlock()
	if m.local != nil {
		m.local.serve()
	}
	m.wg.Add(1)
	go m.followInstances()
	m.syncChecks()
	return nil
}

// Close stops everything the mesh started and waits for it.
func (m *Service) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	cs := m.checks
	m.checks = map[string]*checker{}
	m.mu.Unlock()
	close(m.stop)
	for _, c := range cs {
		c.close()
	}
	if m.local != nil {
		m.local.close()
	}
	m.closeSockets()
	if m.hop != nil {
		m.hop.close()
	} else if m.hopL != nil {
		m.hopL.Close()
	}
	m.served.closeWait()
	m.calls.close()
	m.pool.close()
	m.spans.close()
	m.wg.Wait()
}

// handlerGroup counts running handlers so that Close waits for them (hijacked tunnels and
// upgrades included, which http.Server no longer tracks); the node's context, cancelled
// before Close, ends them.
type handlerGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *handlerGroup) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			http.Error(w, "mesh: the node is shutting down", http.StatusServiceUnavailable)
			return
		}
		g.wg.Add(1)
		g.mu.Unlock()
		defer g.wg.Done()
		h.ServeHTTP(w, r)
	})
}

func (g *handlerGroup) closeWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// ---- the index ----

func (m *Service) rebuild() {
	ix := &index{services: map[string]*serviceEntry{}, byKey: map[string]Endpoint{}, intentions: map[string]IntentionRecord{}}
	m.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollServices) {
			b, _, ok := v.GetLWW(CollServices, k)
			var r ServiceRecord
			if !ok || state.Decode(b, &r) != nil {
				continue
			}
			ix.services[k] = &serviceEntry{cfg: r}
		}
		for _, k := range v.Keys(CollEndpoints) {
			b, _, ok := v.GetLWW(CollEndpoints, k)
			var r EndpointRecord
			if !ok || state.Decode(b, &r) != nil {
				continue
			}
			owner, _, _ := strings.Cut(k, "/")
			p, err := peer.Decode(owner)
			if err != nil || r.NodeID != owner {
				continue // a record must be its owner's
			}
			e := Endpoint{Key: k, Peer: p, Rec: r}
			sk := r.Namespace + "/" + r.Service
			se := ix.services[sk]
			if se == nil {
				se = &serviceEntry{cfg: ServiceRecord{Name: r.Service, Namespace: r.Namespace}}
				ix.services[sk] = se
			}
			se.eps = append(se.eps, e)
			ix.byKey[k] = e
		}
		for _, k := range v.Keys(CollIntentions) {
			b, _, ok := v.GetLWW(CollIntentions, k)
			var r IntentionRecord
			if ok && state.Decode(b, &r) == nil && !r.Delete {
				ix.intentions[k] = r
			}
		}
	})
	for _, se := range ix.services {
		sort.Slice(se.eps, func(i, j int) bool { return se.eps[i].Key < se.eps[j].Key })
	}
	m.idx.Store(ix)
	m.syncChecks()
}

// Resolve returns the endpoints of a service and its configuration: a read of the local
// replica, no network.
func (m *Service) Resolve(ns, name string) ([]Endpoint, ServiceRecord, bool) {
	if ns == "" {
		ns = api.DefaultNamespace
	}
	se := m.idx.Load().services[ns+"/"+name]
	if se == nil || len(se.eps) == 0 {
		return nil, ServiceRecord{}, false
	}
	return se.eps, se.cfg.withDefaults(), true
}

// similar names services close to name (for 404s).
func (m *Service) similar(ns, name string) []string {
	var out []string
	for k, se := range m.idx.Load().services {
		if len(se.eps) == 0 {
			continue
		}
		kns, kn, _ := strings.Cut(k, "/")
		if kn == name || strings.Contains(kn, name) || strings.Contains(name, kn) || editDistance(kn, name) <= 3 {
			if kns != ns {
				out = append(out, k)
			} else {
				out = append(out, kn)
			}
		}
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

func unknownService(m *Service, ns, name string) error {
	sim := m.similar(ns, name)
	hint := "; `constellation mesh services` lists them"
	if len(sim) > 0 {
		hint = "; did you mean " + strings.Join(sim, ", ") + "?"
	}
	return fmt.Errorf("%w %q in namespace %s%s", ErrUnknownService, name, ns, hint)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ---- registry writes ----

func endpointKey(nodeID, ns, svc, id string) string {
	return nodeID + "/" + ns + "/" + svc + "/" + id
}

// Register adds (or replaces) an endpoint: one hosted by this node, or, for an instance
// on another node, by forwarding the registration to that node.
func (m *Service) Register(req api.MeshRegisterRequest) (api.MeshEndpoint, error) {
	return m.register(req, true)
}

func (m *Service) register(req api.MeshRegisterRequest, forward bool) (api.MeshEndpoint, error) {
	if err := validateRegister(&req); err != nil {
		return api.MeshEndpoint{}, err
	}
	if isExecCheck(req.HealthCheck) && !m.cfg.ExecChecks {
		return api.MeshEndpoint{}, errExecOff(m.cfg.Name)
	}
	if m.cfg.CheckNamespace != nil {
		if err := m.cfg.CheckNamespace(req.Namespace); err != nil {
			return api.MeshEndpoint{}, err
		}
	}
	rec := EndpointRecord{Service: req.Name, Namespace: req.Namespace, Version: req.Version, Protocol: req.Protocol,
		Port: req.Port, HealthCheck: req.HealthCheck, Tags: req.Tags, Node: m.cfg.Name, NodeID: m.self.String(),
		TLS: req.TLS, Labels: m.cfg.Labels, Host: "127.0.0.1", Reason: "not checked yet", CheckedAt: m.now().UnixMilli()}
	id := fmt.Sprintf("port-%d", req.Port)
	if req.Instance != "" {
		in, ok := m.insts.LookupInstance(req.Instance)
		if !ok {
			return api.MeshEndpoint{}, bad("field \"instance\": no instance %q in the cluster", req.Instance)
		}
		if in.NodeID != m.self.String() && forward {
			to, err := peer.Decode(in.NodeID)
			if err != nil {
				return api.MeshEndpoint{}, fmt.Errorf("mesh: instance %s: node id %q: %v", req.Instance, in.NodeID, err)
			}
			var ep api.MeshEndpoint
			return ep, m.control(to, "register", req, &ep)
		}
		if in.NodeID != m.self.String() {
			name, _ := m.members.NameOf(in.NodeID)
			return api.MeshEndpoint{}, fmt.Errorf("%w: instance %s runs on node %s: register it there (constellation --node %s mesh register ...), the node hosting an endpoint owns its record",
				ErrBadRequest, req.Instance, name, name)
		}
		if in.Namespace != "" && in.Namespace != req.Namespace && req.Namespace != api.DefaultNamespace {
			return api.MeshEndpoint{}, bad("field \"namespace\": instance %s is in namespace %s", req.Instance, in.Namespace)
		}
		if in.Namespace != "" {
			rec.Namespace = in.Namespace
		}
		rec.Instance = req.Instance
		id = req.Instance
		host, why := instanceHost(in)
		if host == "" {
			return api.MeshEndpoint{}, bad("field \"instance\": %s", why)
		}
		rec.Host = host
	}
	key := endpointKey(m.self.String(), rec.Namespace, rec.Service, id)
	if err := m.putEndpoint(key, rec); err != nil {
		return api.MeshEndpoint{}, err
	}
	return m.apiEndpoint(Endpoint{Key: key, Peer: m.self, Rec: rec}), nil
}

// instanceHost is the address this node dials for an instance's ports.
func instanceHost(in InstanceInfo) (string, string) {
	switch in.Network {
	case "host":
		return "127.0.0.1", ""
	case "":
		if in.IP != "" {
			return in.IP, ""
		}
		return "127.0.0.1", ""
	case "bridge":
		if in.IP == "" {
			return "", fmt.Sprintf("instance %s has no bridge address yet", in.Name)
		}
		return in.IP, ""
	default:
		return "", fmt.Sprintf("instance %s has network %q: the node cannot reach its ports (use --network host or bridge)", in.Name, in.Network)
	}
}

func (m *Service) putEndpoint(key string, rec EndpointRecord) error {
	b, err := state.Encode(rec)
	if err != nil {
		return err
	}
	if err := m.st.Update(func(tx *state.Tx) error { return tx.Put(CollEndpoints, key, b) }); err != nil {
		return err
	}
	m.rebuild()
	return nil
}

// Deregister removes endpoints of a service: an instance's on the node hosting it (by
// forwarding when that is another node), otherwise this node's (all, or a port's).
func (m *Service) Deregister(req api.MeshDeregisterRequest) (int, error) {
	if req.Instance == "" {
		return m.deregisterLocal(req)
	}
	if err := validName("name", req.Name); err != nil {
		return 0, err
	}
	ns, err := normNamespace(req.Namespace)
	if err != nil {
		return 0, err
	}
	eps, _, _ := m.Resolve(ns, req.Name)
	if len(eps) == 0 {
		return 0, unknownService(m, ns, req.Name)
	}
	var hosts []peer.ID
	seen := map[peer.ID]bool{}
	for _, e := range eps {
		if e.Rec.Instance != req.Instance || req.Port != 0 && e.Rec.Port != req.Port || seen[e.Peer] {
			continue
		}
		seen[e.Peer] = true
		hosts = append(hosts, e.Peer)
	}
	if len(hosts) == 0 {
		return 0, fmt.Errorf("%w: service %s has no endpoint matching instance %q port %d", ErrUnknownService, req.Name, req.Instance, req.Port)
	}
	total := 0
	var errs []error
	for _, p := range hosts {
		var n int
		var err error
		if p == m.self {
			n, err = m.deregisterLocal(req)
		} else {
			var out map[string]int
			err = m.control(p, "deregister", req, &out)
			n = out["removed"]
		}
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// deregisterLocal removes the matching endpoints of a service hosted by this node.
func (m *Service) deregisterLocal(req api.MeshDeregisterRequest) (int, error) {
	if err := validName("name", req.Name); err != nil {
		return 0, err
	}
	ns, err := normNamespace(req.Namespace)
	if err != nil {
		return 0, err
	}
	var keys []string
	eps, _, _ := m.Resolve(ns, req.Name)
	for _, e := range eps {
		if e.Peer != m.self || req.Instance != "" && e.Rec.Instance != req.Instance || req.Port != 0 && e.Rec.Port != req.Port {
			continue
		}
		keys = append(keys, e.Key)
	}
	if len(keys) == 0 {
		if len(eps) == 0 {
			return 0, unknownService(m, ns, req.Name)
		}
		return 0, fmt.Errorf("%w: service %s has no matching endpoint on node %s (endpoints are deregistered on the node hosting them)", ErrUnknownService, req.Name, m.cfg.Name)
	}
	if err := m.removeEndpoints(keys); err != nil {
		return 0, err
	}
	return len(keys), nil
}

func (m *Service) removeEndpoints(keys []string) error {
	err := m.st.Update(func(tx *state.Tx) error {
		for _, k := range keys {
			if err := tx.Remove(CollEndpoints, k); err != nil {
				return err
			}
		}
		return nil
	})
	m.rebuild()
	return err
}

// Configure changes a service's configuration.
func (m *Service) Configure(ns, name string, c api.MeshServiceConfig) (api.MeshServiceConfig, error) {
	if err := validName("name", name); err != nil {
		return c, err
	}
	ns, err := normNamespace(ns)
	if err != nil {
		return c, err
	}
	if err := validateConfig(c); err != nil {
		return c, err
	}
	key := ns + "/" + name
	var r ServiceRecord
	if se := m.idx.Load().services[key]; se != nil {
		r = se.cfg
	}
	r.Name, r.Namespace = name, ns
	r = applyConfig(r, c)
	r.UpdatedAt, r.UpdatedBy = m.now().UnixMilli(), m.cfg.Name
	b, err := state.Encode(r)
	if err != nil {
		return c, err
	}
	if err := m.st.Update(func(tx *state.Tx) error { return tx.Put(CollServices, key, b) }); err != nil {
		return c, err
	}
	m.rebuild()
	return r.apiConfig(), nil
}

// SetIntention allows or denies FROM -> TO (remove deletes the pair's intention).
func (m *Service) SetIntention(from, to string, allow, remove bool) (api.MeshIntention, error) {
	f, err := serviceRef("from", from)
	if err != nil {
		return api.MeshIntention{}, err
	}
	t, err := serviceRef("to", to)
	if err != nil {
		return api.MeshIntention{}, err
	}
	r := IntentionRecord{From: f, To: t, Allow: allow, At: m.now().UnixMilli(), Delete: remove}
	b, err := state.Encode(r)
	if err != nil {
		return api.MeshIntention{}, err
	}
	if err := m.st.Update(func(tx *state.Tx) error { return tx.Put(CollIntentions, f+">"+t, b) }); err != nil {
		return api.MeshIntention{}, err
	}
	m.rebuild()
	return apiIntention(r), nil
}

func apiIntention(r IntentionRecord) api.MeshIntention {
	a := api.MeshIntention{From: r.From, To: r.To, Action: "deny", At: time.UnixMilli(r.At).UTC()}
	if r.Allow {
		a.Action = "allow"
	}
	return a
}

// Allowed decides whether caller (NAMESPACE/NAME, NAME empty for an operator's call)
// may call target: the most specific intention wins (exact pair, then wildcards of the
// caller, then of the target); without one, allowed within a namespace, denied across.
func (m *Service) Allowed(callerNS, caller, targetNS, target string) (bool, string) {
	return allowed(m.idx.Load().intentions, callerNS, caller, targetNS, target)
}

func allowed(in map[string]IntentionRecord, callerNS, caller, targetNS, target string) (bool, string) {
	if callerNS == "" {
		callerNS = api.DefaultNamespace
	}
	froms := []string{callerNS + "/" + caller, callerNS + "/*", "*/*"}
	if caller == "" {
		froms = froms[1:]
	}
	tos := []string{targetNS + "/" + target, targetNS + "/*", "*/*"}
	for _, f := range froms {
		for _, t := range tos {
			if r, ok := in[f+">"+t]; ok {
				if r.Allow {
					return true, "intention " + f + " -> " + t + " allows"
				}
				return false, "intention " + f + " -> " + t + " denies"
			}
		}
	}
	if callerNS == targetNS {
		return true, "same namespace"
	}
	return false, fmt.Sprintf("calls from namespace %s to namespace %s are denied unless allowed (constellation mesh allow %s/%s %s/%s)",
		callerNS, targetNS, callerNS, orStar(caller), targetNS, target)
}

func orStar(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// ---- API views ----

func (m *Service) apiEndpoint(e Endpoint) api.MeshEndpoint {
	r := e.Rec
	health := "unhealthy"
	if r.Healthy {
		health = "healthy"
	} else if r.Reason == "not checked yet" {
		health = "unknown"
	}
	tags := r.Tags
	if tags == nil {
		tags = []string{}
	}
	out := api.MeshEndpoint{ID: e.ID(), Service: r.Service, Namespace: r.Namespace, Version: r.Version, Protocol: r.Protocol,
		Port: r.Port, Address: e.Addr(), Instance: r.Instance, Node: r.Node, NodeID: r.NodeID, Tags: tags,
		Health: health, Reason: r.Reason, TLS: r.TLS}
	if r.CheckedAt > 0 {
		out.CheckedAt = time.UnixMilli(r.CheckedAt).UTC()
	}
	return out
}

// Services lists the registered services (ns empty: every namespace).
func (m *Service) Services(ns string) []api.MeshService {
	ix := m.idx.Load()
	var out []api.MeshService
	for _, se := range ix.services {
		if len(se.eps) == 0 || ns != "" && se.eps[0].Rec.Namespace != ns {
			continue
		}
		s := api.MeshService{Name: se.eps[0].Rec.Service, Namespace: se.eps[0].Rec.Namespace, Protocol: se.eps[0].Rec.Protocol,
			Endpoints: len(se.eps), Config: se.cfg.apiConfig(), Versions: []string{}, Nodes: []string{}, Tags: []string{}}
		seen := map[string]bool{}
		add := func(dst *[]string, v string) {
			if v != "" && !seen[fmt.Sprintf("%p", dst)+v] {
				seen[fmt.Sprintf("%p", dst)+v] = true
				*dst = append(*dst, v)
			}
		}
		for _, e := range se.eps {
			if e.Rec.Healthy {
				s.Healthy++
			}
			add(&s.Versions, e.Rec.Version)
			add(&s.Nodes, e.Rec.Node)
			for _, t := range e.Rec.Tags {
				add(&s.Tags, t)
			}
		}
		sort.Strings(s.Versions)
		sort.Strings(s.Nodes)
		sort.Strings(s.Tags)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Endpoints lists a service's endpoints.
func (m *Service) Endpoints(ns, name string) ([]api.MeshEndpoint, error) {
	ns, err := normNamespace(ns)
	if err != nil {
		return nil, err
	}
	eps, _, ok := m.Resolve(ns, name)
	if !ok {
		return nil, unknownService(m, ns, name)
	}
	out := make([]api.MeshEndpoint, 0, len(eps))
	for _, e := range eps {
		out = append(out, m.apiEndpoint(e))
	}
	return out, nil
}

// Intentions lists the intentions.
func (m *Service) Intentions() []api.MeshIntention {
	out := []api.MeshIntention{}
	for _, r := range m.idx.Load().intentions {
		out = append(out, apiIntention(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From+out[i].To < out[j].From+out[j].To })
	return out
}

var _ http.Handler = (*localListener)(nil)
