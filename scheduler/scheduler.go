package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sandbox"
	"github.com/rads-lang/constellation/sched"
)

// Scheduler is the node's part of leaderless scheduling (docs/scheduling.md). Every node
// runs the same loop:
//
//   - owner pass: for each deployment whose rendezvous owner (sched.Owner over the nodes
//     not dead) is this node, compare claims with the desired count, place what is missing
//     with sched.Place on a snapshot built from replicated state, and write claims;
//     delete the claims of duplicates (sched.Reconcile), of scaled-down slots, of dead
//     nodes' instances once replaced, and of drained instances once their replacement runs.
//   - agent pass: for each claim naming this node, admit it (quota rights, preemption,
//     create through the instance manager) or write a rejection; remove local deployment
//     instances whose claim is gone or names another node; restart failed ones with
//     backoff, and give them up (a "failed" rejection) after repeated failures.
//
// The loop runs on every replicated change of its collections (kick) and on a ticker.
type Scheduler struct {
	cfg     Config
	ctx     context.Context // the node's shutdown signal
	host    Host
	st      *state.Store
	members Members
	inst    Instances
	log     *slog.Logger
	now     func() time.Time
	backoff sched.Backoff
	// claimTimeout: a claim with no answer (instance record or rejection) from a live target
	// after this long is placed again.
	claimTimeout time.Duration
	interval     time.Duration
	leftGrace    time.Duration // see defaultLeftGrace
	grace        time.Duration // stop grace for removed instances
	path         string        // managed.json

	mu sync.Mutex // guards the following fields
	// managed are this node's deployment instances (persisted in managed.json).
	managed map[string]*managedInstance
	// removing are names being removed in the background.
	removing map[string]bool
	// consuming are reservations being consumed by a create on this node.
	consuming map[string]bool
	rng       *mrand.Rand
	closed    bool

	passMu sync.Mutex // serialises passes (the loop, API-triggered passes in tests)
	kickCh chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Config configures the scheduler.
type Config struct {
	Name    string // this node's name
	DataDir string
}

// Host is what the scheduler needs of the p2p host.
type Host interface {
	ID() peer.ID
	Libp2p() host.Host
	ProtocolID(name string) protocol.ID
	Guard(h network.StreamHandler) network.StreamHandler
}

// Members is what the scheduler needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
}

// Instances is what the scheduler needs of the instance service (instances.Service).
type Instances interface {
	Info(name string) (sandbox.Info, bool)
	Create(ctx context.Context, req *api.CreateRequest) (instances.Record, error)
	StartAgain(name string) error
	Remove(ctx context.Context, name string, grace time.Duration) error
	Admit(fn func(instances.Free) error) error
}

// managedInstance is what the agent remembers of a local deployment instance.
type managedInstance struct {
	Deployment string            `json:"deployment"`
	Namespace  string            `json:"namespace,omitempty"`
	ClaimID    string            `json:"claim_id"`
	Consumed   map[string]uint64 `json:"consumed,omitempty"` // quota rights taken: dim -> amount
	Failures   int               `json:"failures,omitempty"`
	next       time.Time         // restart due (zero: none scheduled)
}

// New builds the scheduler; its routes go on srv and it follows its collections in st.
// ctx is the node's shutdown signal.
func New(ctx context.Context, cfg Config, h Host, st *state.Store, members Members, inst Instances, srv *httpapi.Server, log *slog.Logger) *Scheduler {
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	s := &Scheduler{
		cfg: cfg, ctx: ctx, host: h, st: st, members: members, inst: inst,
		log: log.With("component", "sched"), now: time.Now,
		backoff:      sched.DefaultBackoff(),
		claimTimeout: 30 * time.Second,
		leftGrace:    defaultLeftGrace,
		interval:     500 * time.Millisecond, // timers (backoff, expiry, claim timeouts); changes kick a pass at once
		grace:        5 * time.Second,
		path:         filepath.Join(cfg.DataDir, "sched", "managed.json"),
		managed:      map[string]*managedInstance{},
		removing:     map[string]bool{},
		consuming:    map[string]bool{},
		rng:          mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		kickCh:       make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	st.Watch(func(cs []crdt.Change) {
		for _, c := range cs {
			s.onChange(c)
		}
	})
	s.registerRoutes(srv.Handle)
	return s
}

// Start loads the managed instance list and runs the loop and the protocol until Close.
func (s *Scheduler) Start() error {
	if b, err := os.ReadFile(s.path); err == nil {
		var m map[string]*managedInstance
		if err := json.Unmarshal(b, &m); err != nil {
			s.log.Warn("unreadable managed instance list; starting empty", "path", s.path, "err", err)
		} else {
			s.managed = m
		}
	}
	s.startProtocol()
	s.wg.Add(1)
	go s.loop()
	return nil
}

// Close stops the loop and waits for background removals. Safe twice.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.stopProtocol()
}

// kick asks for a pass soon (never blocks).
func (s *Scheduler) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// onChange is called for every replicated change.
func (s *Scheduler) onChange(c crdt.Change) {
	switch c.Collection {
	case CollDeployments, CollClaims, CollRejections, instances.Coll, CollReservations, CollDrains,
		membership.Coll, instances.CollResources, CollQuotas:
		s.kick()
	}
}

func (s *Scheduler) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kickCh:
		case <-t.C:
		}
		s.pass()
	}
}

// IsDeploymentInstance reports whether name is claimed by a deployment (its claim, not the
// instance manager's name-conflict rule, decides which copy stays).
func (s *Scheduler) IsDeploymentInstance(name string) bool {
	var has bool
	s.st.View(func(v *state.View) { has = v.Has(CollClaims, name) })
	return has
}

// ---- snapshot of replicated state ----

type schedState struct {
	now    time.Time
	self   string               // node name
	selfID string               // peer ID
	status map[string]string    // peer ID -> status
	leftAt map[string]time.Time // peer ID -> when a left node left
	// leftGrace: a left node's instances count as lost only this long after it left.
	leftGrace time.Duration
	nameOf    map[string]string // peer ID -> name
	idOf      map[string]string // name -> peer ID (alive preferred)
	labels    map[string]map[string]string
	res       map[string]instances.ResourceRecord // peer ID ->
	deps      map[string]DeploymentRecord
	claims    map[string]ClaimRecord
	rejs      map[string]RejectionRecord // "<instance>@<peer ID>"
	insts     map[string]instances.Record
	resv      map[string]ReservationRecord
	drains    map[string]bool // peer ID -> draining
	quotas    map[string]QuotaRecord
	msgs      map[string]DeployStatusRecord
	members   []string       // names of nodes not dead nor left (rendezvous membership)
	alloc     map[string]int // next instance index per deployment, this pass
}

func (s *Scheduler) snapshot() *schedState {
	st := &schedState{
		now: s.now(), leftGrace: s.leftGrace, self: s.cfg.Name, selfID: s.host.ID().String(),
		status: map[string]string{}, leftAt: map[string]time.Time{}, nameOf: map[string]string{}, idOf: map[string]string{},
		labels: map[string]map[string]string{}, res: map[string]instances.ResourceRecord{},
		deps: map[string]DeploymentRecord{}, claims: map[string]ClaimRecord{}, rejs: map[string]RejectionRecord{},
		insts: map[string]instances.Record{}, resv: map[string]ReservationRecord{}, drains: map[string]bool{},
		quotas: map[string]QuotaRecord{}, msgs: map[string]DeployStatusRecord{},
	}
	for _, x := range s.members.Nodes() {
		st.status[x.ID] = x.Status
		if x.Status == api.StatusLeft {
			st.leftAt[x.ID] = x.LastSeen // the record's refresh at leave time
		}
		st.nameOf[x.ID] = x.Name
		if prev, ok := st.idOf[x.Name]; !ok || st.status[prev] != api.StatusAlive {
			st.idOf[x.Name] = x.ID
		}
		st.labels[x.ID] = x.Labels
		if x.Status != api.StatusDead && x.Status != api.StatusLeft {
			st.members = append(st.members, x.Name)
		}
	}
	// Raw values are copied under the lock and decoded after it (the lock is the whole
	// document's: decoding 10,000 records under it stalled every other feature).
	raw := map[string][][2][]byte{}
	s.st.View(func(v *state.View) {
		for _, coll := range schedColls {
			keys := v.Keys(coll)
			kv := make([][2][]byte, 0, len(keys))
			for _, k := range keys {
				if b, _, ok := v.GetLWW(coll, k); ok {
					kv = append(kv, [2][]byte{[]byte(k), b})
				}
			}
			raw[coll] = kv
		}
	})
	each := func(coll string, fn func(k string, v []byte)) {
		for _, kv := range raw[coll] {
			fn(string(kv[0]), kv[1])
		}
	}
	each(instances.CollResources, func(k string, v []byte) {
		if r, err := instances.DecodeResources(v); err == nil {
			st.res[k] = r
		}
	})
	each(CollDeployments, func(k string, v []byte) {
		if r, err := decodeJSONLimited[DeploymentRecord](v); err == nil && r.Name == k {
			st.deps[k] = r
		}
	})
	each(CollClaims, func(k string, v []byte) {
		if r, err := decodeJSONLimited[ClaimRecord](v); err == nil && r.Instance == k {
			st.claims[k] = r
		}
	})
	each(CollRejections, func(k string, v []byte) {
		if r, err := decodeJSONLimited[RejectionRecord](v); err == nil {
			st.rejs[k] = r
		}
	})
	each(instances.Coll, func(k string, v []byte) {
		if r, err := instances.DecodeRecord(v); err == nil {
			st.insts[k] = r
		}
	})
	each(CollReservations, func(k string, v []byte) {
		if r, err := decodeJSONLimited[ReservationRecord](v); err == nil && r.ID == k {
			st.resv[k] = r
		}
	})
	each(CollDrains, func(k string, v []byte) {
		if r, err := decodeJSONLimited[DrainRecord](v); err == nil && r.Draining {
			st.drains[k] = true
		}
	})
	each(CollQuotas, func(k string, v []byte) {
		if r, err := decodeJSONLimited[QuotaRecord](v); err == nil {
			st.quotas[k] = r
		}
	})
	each(CollDeployStatus, func(k string, v []byte) {
		if r, err := decodeJSONLimited[DeployStatusRecord](v); err == nil {
			st.msgs[k] = r
		}
	})
	return st
}

func (st *schedState) alive(peerID string) bool { return st.status[peerID] == api.StatusAlive }

// defaultLeftGrace is how long the instances of a node that left gracefully stay where they are
// before they are placed again: a node restarting (an upgrade, a config change) comes back
// within it and re-adopts its running instances, so nothing moves. A node going away for
// good is drained first (`constellation drain`), or its instances move after the grace.
// A dead node's instances are placed again at once.
const defaultLeftGrace = 30 * time.Second

// gone reports whether a node is dead, unknown, or left longer than the grace ago: its
// instances are lost.
func (st *schedState) gone(peerID string) bool {
	switch st.status[peerID] {
	case "", api.StatusDead:
		return true
	case api.StatusLeft:
		return st.now.Sub(st.leftAt[peerID]) > st.leftGrace
	}
	return false
}

// claim states.
const (
	claimPending  = "pending"
	claimStarting = "starting"
	claimRunning  = "running"
	claimLost     = "lost"     // target dead or left
	claimRejected = "rejected" // target refused, evicted or gave up, or never answered
)

// claimState classifies a claim from the target's replicated answers.
func (s *Scheduler) claimState(st *schedState, c ClaimRecord) (string, *RejectionRecord) {
	if st.gone(c.NodeID) {
		return claimLost, nil
	}
	if r, ok := st.rejs[c.Instance+"@"+c.NodeID]; ok && r.ClaimID == c.ClaimID {
		return claimRejected, &r
	}
	if r, ok := st.insts[c.Instance]; ok && r.NodeID == c.NodeID {
		if r.Status == api.InstanceRunning {
			return claimRunning, nil
		}
		return claimStarting, nil
	}
	if placed := time.UnixMilli(claimPlacedAt(c)); st.now.Sub(placed) > s.claimTimeout {
		return claimRejected, &RejectionRecord{Instance: c.Instance, Node: c.Node, NodeID: c.NodeID, ClaimID: c.ClaimID,
			Code: "timeout", Reason: fmt.Sprintf("node %s did not answer within %v", c.Node, s.claimTimeout)}
	}
	return claimPending, nil
}

// claimPlacedAt is when the claim's current decision was made (encoded in the claim ID).
func claimPlacedAt(c ClaimRecord) int64 {
	if i := strings.IndexByte(c.ClaimID, '-'); i > 0 {
		if v, err := strconv.ParseInt(c.ClaimID[:i], 10, 64); err == nil {
			return v
		}
	}
	return c.At
}

func healthy(state string) bool {
	return state == claimPending || state == claimStarting || state == claimRunning
}

func newClaimID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixMilli(), 10) + "-" + hex.EncodeToString(b[:])
}

// ---- the pass ----

func (s *Scheduler) pass() {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	if s.idle() {
		return
	}
	st := s.snapshot()
	s.ownerPass(st)
	s.agentPass(st)
	s.expireReservations(st)
}

// idle reports that there is nothing to schedule anywhere in the cluster: no deployment,
// claim, rejection, reservation, drain or local deployment instance. An idle cluster then
// pays nothing for the loop (a pass decodes every record of the scheduling collections).
func (s *Scheduler) idle() bool {
	s.mu.Lock()
	managed := len(s.managed)
	s.mu.Unlock()
	if managed > 0 {
		return false
	}
	idle := true
	s.st.View(func(v *state.View) {
		for _, c := range []string{CollDeployments, CollClaims, CollRejections, CollReservations, CollDrains} {
			if v.Len(c) > 0 {
				idle = false
			}
		}
	})
	return idle
}

// schedWrites collects one pass's writes, applied as one delta.
type schedWrites struct {
	puts map[string]map[string][]byte // collection -> key -> value
	dels map[string][]string
}

func (w *schedWrites) put(coll, key string, v any) {
	if w.puts == nil {
		w.puts = map[string]map[string][]byte{}
	}
	if w.puts[coll] == nil {
		w.puts[coll] = map[string][]byte{}
	}
	b, _ := json.Marshal(v)
	w.puts[coll][key] = b
}

func (w *schedWrites) del(coll, key string) {
	if w.dels == nil {
		w.dels = map[string][]string{}
	}
	w.dels[coll] = append(w.dels[coll], key)
}

// apply writes everything as one batch: persisted, published, and kicks the loop.
func (s *Scheduler) apply(w *schedWrites) {
	if len(w.puts) == 0 && len(w.dels) == 0 {
		return
	}
	_ = s.st.Update(func(tx *state.Tx) error {
		for _, coll := range sortedKeys(w.puts) {
			kv := w.puts[coll]
			for _, k := range sortedKeys(kv) {
				if err := tx.Put(coll, k, kv[k]); err != nil {
					s.log.Error("write", "collection", coll, "key", k, "err", err)
				}
			}
		}
		for _, coll := range sortedKeys(w.dels) {
			for _, k := range w.dels[coll] {
				if tx.Has(coll, k) {
					_ = tx.Remove(coll, k)
				}
			}
		}
		return nil
	})
	s.kick()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ---- owner ----

// placeItem is an instance the owner must place.
type placeItem struct {
	name     string
	slot     int
	at       int64
	avoid    []string
	replaces string
}

func (s *Scheduler) ownerPass(st *schedState) {
	var w schedWrites
	// Claims by deployment.
	byDep := map[string][]ClaimRecord{}
	for _, c := range st.claims {
		byDep[c.Deployment] = append(byDep[c.Deployment], c)
	}
	names := sortedKeys(st.deps)
	for dn := range byDep {
		if _, ok := st.deps[dn]; !ok {
			names = append(names, dn) // claims of a deployment whose record is gone
		}
	}
	sort.Strings(names)
	rv := sched.NewRendezvous(st.members)
	var cl *clusterView
	for _, dn := range names {
		if rv.Owner(dn) != st.self {
			continue
		}
		d, ok := st.deps[dn]
		cls := byDep[dn]
		if !ok || d.Deleted {
			for _, c := range cls {
				w.del(CollClaims, c.Instance)
			}
			continue
		}
		if cl == nil {
			cl = s.buildCluster(st)
		}
		msg := s.ownDeployment(st, cl, d, cls, &w)
		if old, ok := st.msgs[dn]; !ok || old.Message != msg || old.Owner != st.self {
			w.put(CollDeployStatus, dn, DeployStatusRecord{Owner: st.self, Message: msg, At: st.now.UnixMilli()})
		}
	}
	s.apply(&w)
}

// ownDeployment reconciles one owned deployment and returns its status message.
func (s *Scheduler) ownDeployment(st *schedState, cl *clusterView, d DeploymentRecord, cls []ClaimRecord, w *schedWrites) string {
	sort.Slice(cls, func(i, j int) bool { return cls[i].Instance < cls[j].Instance })
	states := map[string]string{}
	rejs := map[string]*RejectionRecord{}
	for _, c := range cls {
		states[c.Instance], rejs[c.Instance] = s.claimState(st, c)
	}
	deleted := map[string]bool{}
	del := func(name string) {
		if !deleted[name] {
			deleted[name] = true
			w.del(CollClaims, name)
			cl.remove(name)
		}
	}
	// Make-before-break pairs: a running replacement retires the old instance; a pending
	// one keeps both and is left out of Reconcile.
	excluded := map[string]bool{}
	replacing := map[string]bool{} // old instances with a replacement under way
	for _, c := range cls {
		if c.Replaces == "" || !healthy(states[c.Instance]) {
			continue
		}
		old, ok := st.claims[c.Replaces]
		if !ok || !healthy(states[old.Instance]) {
			continue
		}
		if states[c.Instance] == claimRunning {
			del(old.Instance)
			excluded[old.Instance] = true
		} else {
			excluded[c.Instance] = true
			replacing[old.Instance] = true
		}
	}
	var running []sched.Running
	for _, c := range cls {
		if healthy(states[c.Instance]) && !excluded[c.Instance] && !deleted[c.Instance] {
			running = append(running, sched.Running{ID: c.Instance, Index: c.Slot, Node: c.Node,
				Created: sched.Stamp{Wall: c.At}, Ready: states[c.Instance] == claimRunning})
		}
	}
	r := sched.Reconcile(d.Name, d.Instances, running)
	for _, x := range r.Stop {
		del(x.ID)
	}
	// Slots with no live instance: reuse a rejected claim's name (the instance never ran),
	// otherwise a new name. Lost and unused rejected claims are deleted.
	reuse := map[int]ClaimRecord{}
	for _, c := range cls {
		if states[c.Instance] == claimRejected && c.Slot < d.Instances {
			if _, ok := reuse[c.Slot]; !ok {
				reuse[c.Slot] = c
			}
		}
	}
	var todo []placeItem
	reused := map[string]bool{}
	for _, slot := range r.Missing {
		if c, ok := reuse[slot]; ok {
			if rj := rejs[c.Instance]; rj != nil && st.now.Before(time.UnixMilli(rj.At).Add(rejectionDelay(c, rj))) {
				reused[c.Instance] = true // keep the claim; place it again once the delay passed
				continue
			}
			avoid := append(slices.Clone(c.Avoid), c.Node)
			slices.Sort(avoid)
			todo = append(todo, placeItem{name: c.Instance, slot: slot, at: c.At, avoid: slices.Compact(avoid)})
			reused[c.Instance] = true
			continue
		}
		todo = append(todo, placeItem{name: s.newName(st, d.Name), slot: slot, at: st.now.UnixMilli()})
	}
	for _, c := range cls {
		if !healthy(states[c.Instance]) && !reused[c.Instance] {
			// A replacement that failed leaves its old instance in place (drained again below).
			del(c.Instance)
		}
	}
	// Drains: kept instances on draining nodes get a replacement first.
	for _, k := range r.Keep {
		c := st.claims[k.ID]
		if st.drains[c.NodeID] && !replacing[c.Instance] {
			todo = append(todo, placeItem{name: s.newName(st, d.Name), slot: c.Slot, at: c.At, replaces: c.Instance})
		}
	}
	msg := s.statusMessage(d, states, rejs)
	if len(todo) > 0 {
		if pm := s.place(st, cl, d, todo, w); pm != "" {
			msg = strings.TrimSuffix(pm+"; "+msg, "; ")
		}
	}
	return msg
}

// rejectionDelay is how long a rejected instance waits before it is placed again: not at
// all the first time (another node may take it), then doubling from 250 ms per node that
// refused it, up to 5 s; quota refusals wait at least 1 s (rights come back only when
// instances go away).
func rejectionDelay(c ClaimRecord, rj *RejectionRecord) time.Duration {
	d := time.Duration(0)
	if len(c.Avoid) > 0 {
		d = min(5*time.Second, 250*time.Millisecond<<min(len(c.Avoid), 5))
	}
	if rj.Code == "quota" {
		d = max(d, time.Second)
	}
	return d
}

// newName returns an unused instance name for a deployment: one past the highest index
// of its claims and instance records (names allocated in this pass count too).
func (s *Scheduler) newName(st *schedState, dep string) string {
	if st.alloc == nil {
		st.alloc = map[string]int{}
	}
	next, ok := st.alloc[dep]
	if !ok {
		for name := range st.claims {
			if dn, i, ok := sched.ParseInstanceID(name); ok && dn == dep && i >= next {
				next = i + 1
			}
		}
		for name := range st.insts {
			if dn, i, ok := sched.ParseInstanceID(name); ok && dn == dep && i >= next {
				next = i + 1
			}
		}
	}
	st.alloc[dep] = next + 1
	return instanceName(dep, next)
}

func (s *Scheduler) statusMessage(d DeploymentRecord, states map[string]string, rejs map[string]*RejectionRecord) string {
	for _, name := range sortedKeys(rejs) {
		if r := rejs[name]; r != nil {
			return fmt.Sprintf("%s refused by %s: %s", name, r.Node, r.Reason)
		}
	}
	return ""
}

// place places todo items (grouped by their avoided nodes) and writes claims.
func (s *Scheduler) place(st *schedState, cl *clusterView, d DeploymentRecord, todo []placeItem, w *schedWrites) string {
	cons, _ := sched.ParseConstraints(d.Constraints)
	aff, _ := sched.ParseTerms(d.Affinity)
	anti, _ := sched.ParseTerms(d.AntiAffinity)
	res := specResources(&d.DeploymentSpec)
	var msgs []string
	// Quota: place what the namespace's quota allows in this view; the targets enforce it
	// exactly with bounded-counter rights.
	q, hasQuota := st.quotas[d.Namespace]
	var used sched.Usage
	if hasQuota {
		used = cl.nsUsage[d.Namespace]
		fit := sched.MaxFit(q.sched(), used, res)
		if fit < len(todo) {
			_, err := sched.CheckQuota(d.Namespace, q.sched(), used, sched.UsageOf(res, len(todo)))
			msgs = append(msgs, fmt.Sprintf("%d instance(s) wait for quota: %v", len(todo)-fit, err))
			todo = todo[:max(fit, 0)]
		}
	}
	groups := map[string][]placeItem{}
	for _, it := range todo {
		k := strings.Join(it.avoid, ",")
		groups[k] = append(groups[k], it)
	}
	for _, gk := range sortedKeys(groups) {
		items := groups[gk]
		req := sched.Request{
			Deployment: d.Name, Namespace: d.Namespace, Labels: d.Labels, Resources: res,
			Strategy: sched.Strategy(d.Strategy), SpreadBy: d.SpreadBy, Constraints: cons,
			Affinity: aff, AntiAffinity: anti, Priority: specPriority(&d.DeploymentSpec), Avoid: items[0].avoid,
		}
		byName := map[string]placeItem{}
		for _, it := range items {
			req.Instances = append(req.Instances, it.name)
			byName[it.name] = it
		}
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d/%d", d.Name, d.Generation, st.now.UnixNano())
		opts := sched.Options{Rand: mrand.New(mrand.NewPCG(h.Sum64(), 1))}
		plan, err := cl.c.Place(req, opts)
		if err != nil {
			msgs = append(msgs, err.Error())
		}
		if len(plan.Placements) == 0 {
			continue
		}
		if aerr := cl.c.Apply(req, plan); aerr != nil {
			s.log.Warn("apply plan to view", "deployment", d.Name, "err", aerr)
		}
		for _, p := range plan.Placements {
			it := byName[p.Instance]
			prio := specPriority(&d.DeploymentSpec)
			burst := false
			if hasQuota {
				dec, qerr := sched.CheckQuota(d.Namespace, q.sched(), used, sched.UsageOf(res, 1))
				if qerr == nil && dec.InBurst() {
					burst, prio = true, sched.MinPriority // burst capacity is preempted first
				}
				used = used.Add(sched.UsageOf(res, 1))
			}
			c := ClaimRecord{
				Instance: p.Instance, Deployment: d.Name, Namespace: d.Namespace, Slot: it.slot,
				Node: p.Node, NodeID: st.idOf[p.Node], ClaimID: newClaimID(st.now), Owner: st.self,
				At: it.at, Priority: prio, Burst: burst, CPUMilli: res.CPUMilli, RAMMB: res.RAMMB, DiskMB: res.DiskMB,
				Replaces: it.replaces, Preempts: p.Preempts, Avoid: it.avoid,
			}
			w.put(CollClaims, c.Instance, c)
			cl.claimed(c)
		}
		if hasQuota {
			cl.nsUsage[d.Namespace] = used
		}
	}
	return strings.Join(msgs, "; ")
}

// clusterView is the owner's sched.Cluster plus namespace usage, for one pass.
type clusterView struct {
	c       *sched.Cluster
	nsUsage map[string]sched.Usage
}

func (cv *clusterView) remove(name string) {
	if in, _, ok := cv.c.Instance(name); ok {
		u := cv.nsUsage[in.Namespace]
		u.CPUMilli -= in.Resources.CPUMilli
		u.RAMMB -= in.Resources.RAMMB
		u.Instances--
		cv.nsUsage[in.Namespace] = u
		_, _ = cv.c.RemoveInstance(name)
	}
}

func (cv *clusterView) claimed(c ClaimRecord) {}

// buildCluster builds the placement snapshot: alive nodes able to run instances, with
// their capacity, reservations and draining flag, and the instances claimed on them
// (healthy claims) or running there outside deployments.
func (s *Scheduler) buildCluster(st *schedState) *clusterView {
	cv := &clusterView{nsUsage: map[string]sched.Usage{}}
	nodes := map[string]*sched.Node{} // by peer ID
	var order []string
	for id, status := range st.status {
		r, ok := st.res[id]
		if status != api.StatusAlive || !ok || !r.Available {
			continue
		}
		nodes[id] = &sched.Node{
			ID: st.nameOf[id], Labels: st.labels[id], Draining: st.drains[id],
			Capacity: sched.Resources{CPUMilli: int64(r.CPUCapacity * 10), RAMMB: r.RAMCapacityMB, DiskMB: r.DiskCapacityMB},
		}
		order = append(order, id)
	}
	for _, rv := range st.resv {
		if nd := nodes[rv.NodeID]; nd != nil && rv.live(st.now) {
			nd.Reserved = nd.Reserved.Add(rv.resources())
		}
	}
	for _, c := range st.claims {
		state, _ := s.claimState(st, c)
		if !healthy(state) {
			continue
		}
		res := sched.Resources{CPUMilli: c.CPUMilli, RAMMB: c.RAMMB, DiskMB: c.DiskMB}
		u := cv.nsUsage[c.Namespace]
		cv.nsUsage[c.Namespace] = u.Add(sched.UsageOf(res, 1))
		nd := nodes[c.NodeID]
		if nd == nil {
			continue
		}
		labels := map[string]string{}
		if d, ok := st.deps[c.Deployment]; ok {
			labels = d.Labels
		}
		nd.Instances = append(nd.Instances, sched.Instance{ID: c.Instance, Deployment: c.Deployment,
			Namespace: c.Namespace, Labels: labels, Priority: c.Priority, Resources: res})
	}
	for name, r := range st.insts {
		if _, ok := st.claims[name]; ok {
			continue
		}
		nd := nodes[r.NodeID]
		if nd == nil || (r.Status != api.InstanceRunning && r.Status != api.InstanceStarting && r.Status != api.InstanceCreated) {
			continue
		}
		nd.Instances = append(nd.Instances, sched.Instance{ID: name, Deployment: name, Priority: sched.MaxPriority,
			Resources: sched.Resources{CPUMilli: sched.CPUPercent(r.CPUPercent) + sched.CPUCores(float64(r.CPUCores)), RAMMB: r.RAMMB, DiskMB: r.DiskMB}})
	}
	sort.Strings(order)
	list := make([]sched.Node, 0, len(order))
	for _, id := range order {
		list = append(list, *nodes[id])
	}
	c, err := sched.NewCluster(list)
	if err != nil {
		s.log.Warn("placement snapshot", "err", err)
		c, _ = sched.NewCluster(nil)
	}
	cv.c = c
	return cv
}

// ---- agent (target side) ----

func (s *Scheduler) agentPass(st *schedState) {
	var w schedWrites
	var mine []ClaimRecord
	for _, c := range st.claims {
		if c.NodeID == st.selfID {
			mine = append(mine, c)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Instance < mine[j].Instance })
	changed := false
	for _, c := range mine {
		d, ok := st.deps[c.Deployment]
		if !ok || d.Deleted {
			continue
		}
		s.mu.Lock()
		mi := s.managed[c.Instance]
		removing := s.removing[c.Instance]
		s.mu.Unlock()
		if removing {
			continue
		}
		if mi != nil {
			if mi.ClaimID != c.ClaimID {
				s.mu.Lock()
				mi.ClaimID = c.ClaimID
				s.mu.Unlock()
				changed = true
			}
			if s.supervise(st, c, mi, &w) {
				changed = true
			}
			continue
		}
		if r, ok := st.rejs[c.Instance+"@"+st.selfID]; ok && r.ClaimID == c.ClaimID {
			continue
		}
		if rej := s.admit(st, c, d); rej != nil {
			w.put(CollRejections, c.Instance+"@"+st.selfID, rej)
		}
		changed = true
	}
	// Local deployment instances whose claim is gone or moved.
	s.mu.Lock()
	var drop []string
	for name := range s.managed {
		if c, ok := st.claims[name]; (!ok || c.NodeID != st.selfID) && !s.removing[name] {
			drop = append(drop, name)
		}
	}
	s.mu.Unlock()
	sort.Strings(drop)
	for _, name := range drop {
		s.removeAsync(name, "claim withdrawn")
	}
	// Rejections of ours for claims that moved on are garbage.
	for k, r := range st.rejs {
		if r.NodeID != st.selfID {
			continue
		}
		if c, ok := st.claims[r.Instance]; !ok || (c.NodeID != st.selfID && st.now.Sub(time.UnixMilli(r.At)) > time.Minute) {
			w.del(CollRejections, k)
		}
	}
	s.apply(&w)
	if changed {
		s.saveManaged()
	}
}

func (s *Scheduler) saveManaged() {
	s.mu.Lock()
	b, _ := json.Marshal(s.managed)
	s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		s.log.Error("save managed instances", "err", err)
		return
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, s.path)
		if err != nil {
			s.log.Error("save managed instances", "err", err)
		}
	}
}

// admit runs a claim on this node or returns the rejection to write.
func (s *Scheduler) admit(st *schedState, c ClaimRecord, d DeploymentRecord) *RejectionRecord {
	reject := func(code, reason string) *RejectionRecord {
		s.log.Info("claim rejected", "instance", c.Instance, "code", code, "reason", reason)
		return &RejectionRecord{Instance: c.Instance, Node: st.self, NodeID: st.selfID, ClaimID: c.ClaimID,
			Code: code, Reason: reason, At: st.now.UnixMilli()}
	}
	if _, ok := s.inst.Info(c.Instance); ok {
		return reject("exists", fmt.Sprintf("an instance named %s already exists on node %s", c.Instance, st.self))
	}
	// Preemption: the claim names the victims on this node.
	for _, v := range c.Preempts {
		s.mu.Lock()
		_, ok := s.managed[v]
		s.mu.Unlock()
		if !ok {
			continue
		}
		if vc, ok := st.claims[v]; ok {
			var w schedWrites
			w.put(CollRejections, v+"@"+st.selfID, RejectionRecord{Instance: v, Node: st.self, NodeID: st.selfID,
				ClaimID: vc.ClaimID, Code: "preempted", Reason: fmt.Sprintf("preempted by %s (priority %d)", c.Instance, c.Priority), At: st.now.UnixMilli()})
			s.apply(&w)
		}
		s.remove(v, "preempted by "+c.Instance)
	}
	consumed, err := s.consumeQuota(st, d.Namespace, sched.Resources{CPUMilli: c.CPUMilli, RAMMB: c.RAMMB, DiskMB: c.DiskMB})
	if err != nil {
		return reject("quota", err.Error())
	}
	req := api.CreateRequest{
		Name: c.Instance, Namespace: d.Namespace, Command: d.Command, Script: d.Script, ScriptContent: d.ScriptContent,
		Args: d.Args, Env: d.Env, Code: d.Code, CPUPercent: d.CPUPercent, CPUCores: d.CPUCores,
		RAMMB: d.RAMMB, DiskMB: d.DiskMB, PIDs: d.PIDs, Restart: sandbox.RestartNever,
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	s.mu.Lock()
	s.managed[c.Instance] = &managedInstance{Deployment: c.Deployment, Namespace: d.Namespace, ClaimID: c.ClaimID, Consumed: consumed}
	s.mu.Unlock()
	if _, err := s.inst.Create(ctx, &req); err != nil {
		s.mu.Lock()
		delete(s.managed, c.Instance)
		s.mu.Unlock()
		s.returnQuota(d.Namespace, consumed)
		_, code, _ := httpapi.Status(err)
		return reject(code, err.Error())
	}
	s.log.Debug("claim admitted", "instance", c.Instance, "deployment", c.Deployment)
	return nil
}

// supervise restarts a failed local deployment instance with backoff and gives it up
// (a "failed" rejection: the owner places it elsewhere) after repeated failures here.
func (s *Scheduler) supervise(st *schedState, c ClaimRecord, mi *managedInstance, w *schedWrites) bool {
	in, ok := s.inst.Info(c.Instance)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch in.State {
	case sandbox.StateRunning:
		if mi.Failures > 0 && !in.StartedAt.IsZero() && st.now.Sub(in.StartedAt) > 10*time.Second {
			mi.Failures = 0
			return true
		}
		return false
	case sandbox.StateExited:
	default:
		return false
	}
	if r, ok := st.rejs[c.Instance+"@"+st.selfID]; ok && r.ClaimID == c.ClaimID {
		return false // given up; the owner moves it
	}
	if mi.next.IsZero() {
		mi.Failures++
		if mi.Failures >= s.backoff.AvoidAfter {
			reason := fmt.Sprintf("failed %d times in a row on node %s", mi.Failures, st.self)
			if in.LastExit != nil {
				reason += fmt.Sprintf(" (last: %s, code %d)", in.LastExit.Reason, in.LastExit.Code)
			}
			w.put(CollRejections, c.Instance+"@"+st.selfID, RejectionRecord{Instance: c.Instance, Node: st.self,
				NodeID: st.selfID, ClaimID: c.ClaimID, Code: "failed", Reason: reason, At: st.now.UnixMilli()})
			return true
		}
		mi.next = st.now.Add(s.backoff.Delay(mi.Failures, s.rng))
		return true
	}
	if st.now.Before(mi.next) {
		return false
	}
	mi.next = time.Time{}
	name := c.Instance
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() { // not under s.mu; owned by s.wg
		defer s.wg.Done()
		if err := s.inst.StartAgain(name); err != nil {
			s.log.Warn("restart deployment instance", "instance", name, "err", err)
		}
	}()
	return true
}

// removeAsync removes a local deployment instance in the background.
func (s *Scheduler) removeAsync(name, why string) {
	s.mu.Lock()
	if s.closed || s.removing[name] {
		s.mu.Unlock()
		return
	}
	s.removing[name] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.remove(name, why)
	}()
}

// remove stops and destroys a local deployment instance and returns its quota rights.
func (s *Scheduler) remove(name, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.grace+30*time.Second)
	if err := s.inst.Remove(ctx, name, s.grace); err != nil {
		s.log.Warn("remove deployment instance", "instance", name, "err", err)
	}
	cancel()
	s.mu.Lock()
	mi := s.managed[name]
	delete(s.managed, name)
	delete(s.removing, name)
	s.mu.Unlock()
	if mi != nil {
		s.returnQuota(mi.Namespace, mi.Consumed)
	}
	s.saveManaged()
	s.log.Info("deployment instance removed", "instance", name, "why", why)
	s.kick()
}

// schedColls are the collections a scheduling pass reads.
var schedColls = []string{instances.CollResources, CollDeployments, CollClaims, CollRejections, instances.Coll,
	CollReservations, CollDrains, CollQuotas, CollDeployStatus}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// round rounds f to digits decimal places.
func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// get reads an LWW register of the replicated document.
func (s *Scheduler) get(coll, key string) ([]byte, bool) {
	var b []byte
	var ok bool
	s.st.View(func(v *state.View) { b, _, ok = v.GetLWW(coll, key) })
	return b, ok
}
