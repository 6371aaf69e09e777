package scheduler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/fsutil"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
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
	metrics *schedMetrics   // metrics.go
	ctx     context.Context // the node's shutdown signal
	host    Host
	st      *state.Store
	members Members
	inst    Instances
	secrets SecretChecker // nil: deployments with secrets are refused
	svc     *p2p.Service  // the scheduling protocol (proto.go)
	log     *slog.Logger
	now     func() time.Time
	decider
	interval  time.Duration
	leftGrace time.Duration // see defaultLeftGrace
	grace     time.Duration // stop grace for removed instances
	path      string        // managed.json

	mu sync.Mutex // guards the following fields
	// managed are this node's deployment instances (persisted in managed.json).
	managed map[string]*managedInstance
	// removing are names being removed in the background.
	removing map[string]bool
	// consuming are reservations being consumed by a create on this node.
	consuming map[string]bool
	// lastReject is the last rejection logged per instance (logging once per reason).
	lastReject map[string]string
	closed     bool

	passMu sync.Mutex // serialises passes (the loop, API-triggered passes in tests)
	saveMu sync.Mutex // serialises saveManaged

	cacheMu sync.Mutex                         // guards cache
	cache   map[string]map[string]cachedRecord // decoded records of the last snapshot
	kickCh  chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Config configures the scheduler.
type Config struct {
	Name    string // this node's name
	DataDir string
	// Metrics receives the scheduler's collectors (metrics.go; nil: a private registry).
	Metrics prometheus.Registerer
}

// Host is what the scheduler needs of the p2p host.
type Host interface {
	ID() peer.ID
	NewService(name string, cfg p2p.ServiceConfig, h p2p.Handler) (*p2p.Service, error)
}

// Members is what the scheduler needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
	// Settled reports whether this node has caught up with the cluster since it started
	// (membership.Service.Settled): until then it makes no owner decisions and removes
	// nothing, so a restart or a stale state re-places nothing.
	Settled() bool
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
		decider: decider{
			claimTimeout: 30 * time.Second,
			backoff:      sched.DefaultBackoff(),
			newClaimID:   randomClaimID,
			rng:          mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		},
		metrics:    newSchedMetrics(cfg.Metrics),
		leftGrace:  defaultLeftGrace,
		interval:   500 * time.Millisecond, // timers (backoff, expiry, claim timeouts); changes kick a pass at once
		grace:      5 * time.Second,
		path:       filepath.Join(cfg.DataDir, "sched", "managed.json"),
		managed:    map[string]*managedInstance{},
		removing:   map[string]bool{},
		consuming:  map[string]bool{},
		lastReject: map[string]string{},
		kickCh:     make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	s.note = s.log.Warn
	s.metrics.reg.MustRegister(newPendingCollector(s))
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
	if err := s.startProtocol(); err != nil {
		return err
	}
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

func (s *Scheduler) snapshot() *schedState {
	st := &schedState{
		now: s.now(), leftGrace: s.leftGrace, self: s.cfg.Name, selfID: s.host.ID().String(),
		status: map[string]string{}, leftAt: map[string]time.Time{}, deadSince: map[string]time.Time{}, nameOf: map[string]string{}, idOf: map[string]string{},
		labels: map[string]map[string]string{}, res: map[string]instances.ResourceRecord{},
		deps: map[string]DeploymentRecord{}, claims: map[string]ClaimRecord{}, rejs: map[string]RejectionRecord{},
		insts: map[string]instances.Record{}, resv: map[string]ReservationRecord{}, drains: map[string]bool{},
		quotas: map[string]QuotaRecord{}, msgs: map[string]DeployStatusRecord{},
	}
	for _, x := range s.members.Nodes() {
		if backFromDead(x, st.now) {
			x.Status = api.StatusAlive
		}
		st.status[x.ID] = x.Status
		switch x.Status {
		case api.StatusLeft:
			st.leftAt[x.ID] = x.LastSeen // the record's refresh at leave time
		case api.StatusDead:
			st.deadSince[x.ID] = x.LastSeen
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
	// Records are decoded outside the lock, and only when their bytes changed since the last
	// snapshot (the decode cache): a pass over 10,000 unchanged instances decodes nothing.
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	c := &snapCache{old: s.cache, next: map[string]map[string]cachedRecord{}}
	decodeAll(c, instances.CollResources, raw, instances.DecodeResources, func(k string, r instances.ResourceRecord) { st.res[k] = r })
	decodeAll(c, CollDeployments, raw, decodeRecord[DeploymentRecord], func(k string, r DeploymentRecord) {
		if r.Name == k {
			st.deps[k] = r
		}
	})
	decodeAll(c, CollClaims, raw, decodeRecord[ClaimRecord], func(k string, r ClaimRecord) {
		if r.Instance == k {
			st.claims[k] = r
		}
	})
	decodeAll(c, CollRejections, raw, decodeRecord[RejectionRecord], func(k string, r RejectionRecord) { st.rejs[k] = r })
	decodeAll(c, instances.Coll, raw, instances.DecodeRecord, func(k string, r instances.Record) { st.insts[k] = r })
	decodeAll(c, CollReservations, raw, decodeRecord[ReservationRecord], func(k string, r ReservationRecord) {
		if r.ID == k {
			st.resv[k] = r
		}
	})
	decodeAll(c, CollDrains, raw, decodeRecord[DrainRecord], func(k string, r DrainRecord) {
		if r.Draining {
			st.drains[k] = true
		}
	})
	decodeAll(c, CollQuotas, raw, decodeRecord[QuotaRecord], func(k string, r QuotaRecord) { st.quotas[k] = r })
	decodeAll(c, CollDeployStatus, raw, decodeRecord[DeployStatusRecord], func(k string, r DeployStatusRecord) { st.msgs[k] = r })
	s.cache = c.next
	return st
}

// ---- the pass ----

func (s *Scheduler) pass() {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	if s.idle() {
		return
	}
	if !s.members.Settled() {
		return // catching up: a stale view would re-place healthy instances
	}
	start := time.Now()
	st := s.snapshot()
	s.apply(s.decideOwner(st))
	s.agentPass(st)
	s.expireReservations(st)
	s.metrics.pass(time.Since(start))
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
	errs []error // records that could not be encoded
}

func (w *schedWrites) put(coll, key string, v any) {
	if w.puts == nil {
		w.puts = map[string]map[string][]byte{}
	}
	if w.puts[coll] == nil {
		w.puts[coll] = map[string][]byte{}
	}
	b, err := state.Encode(v)
	if err != nil { // over the record size limit: written nowhere, reported by apply
		w.errs = append(w.errs, fmt.Errorf("%s/%s: %w", coll, key, err))
		return
	}
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
	for _, err := range w.errs {
		s.log.Error("record not written", "err", err)
	}
	if len(w.puts) == 0 && len(w.dels) == 0 {
		return
	}
	s.metrics.writes(w)
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

// ---- agent (target side) ----

// agentPass runs this node's part of a pass: decideAgent on the snapshot and what this
// node knows of its own instances, then the actions (admissions, restarts, removals) and
// the writes.
func (s *Scheduler) agentPass(st *schedState) {
	view := agentView{managed: map[string]managedInstance{}, removing: map[string]bool{}, local: map[string]sandbox.Info{}}
	s.mu.Lock()
	for name, mi := range s.managed {
		view.managed[name] = *mi
	}
	for name := range s.removing {
		view.removing[name] = true
	}
	s.mu.Unlock()
	for name := range view.managed {
		if in, ok := s.inst.Info(name); ok {
			view.local[name] = in
		}
	}
	for name, c := range st.claims {
		if _, ok := view.managed[name]; !ok && c.NodeID == st.selfID {
			if in, ok := s.inst.Info(name); ok {
				view.local[name] = in
			}
		}
	}
	plan := s.decideAgent(st, view)
	s.mu.Lock()
	for name, mi := range plan.managed {
		if cur, ok := s.managed[name]; ok {
			*cur = mi
		}
	}
	closed := s.closed
	s.mu.Unlock()
	for _, name := range plan.restart {
		if closed {
			break
		}
		s.wg.Add(1)
		go func() { // owned by s.wg; a start may take a while
			defer s.wg.Done()
			if err := s.inst.StartAgain(name); err != nil {
				s.log.Warn("restart deployment instance", "instance", name, "err", err)
			}
		}()
	}
	for _, name := range plan.adopt {
		c := st.claims[name]
		s.mu.Lock()
		if _, ok := s.managed[name]; !ok {
			// The quota rights it took are not known: they are not given back on removal
			// (the namespace's quota errs on the safe side).
			s.managed[name] = &managedInstance{Deployment: c.Deployment, Namespace: c.Namespace, ClaimID: c.ClaimID}
		}
		s.mu.Unlock()
		s.log.Info("deployment instance adopted", "instance", name, "deployment", c.Deployment)
	}
	for _, name := range plan.admit {
		c := st.claims[name]
		if rej := s.admit(st, c, st.deps[c.Deployment]); rej != nil {
			plan.writes.put(CollRejections, c.Instance+"@"+st.selfID, rej)
		}
	}
	for _, name := range plan.remove {
		s.removeAsync(name, "claim withdrawn")
	}
	s.apply(&plan.writes)
	if plan.changed {
		s.saveManaged()
	}
}

// saveManaged writes the managed list crash-safely; saves are serialised so the last
// list taken is the last written.
func (s *Scheduler) saveManaged() {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	b, _ := json.Marshal(s.managed)
	s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		s.log.Error("save managed instances", "err", err)
		return
	}
	if err := fsutil.WriteFile(s.path, b, 0o600); err != nil {
		s.log.Error("save managed instances", "err", err)
	}
}

// admit runs a claim on this node or returns the rejection to write.
func (s *Scheduler) admit(st *schedState, c ClaimRecord, d DeploymentRecord) *RejectionRecord {
	reject := func(code, reason string) *RejectionRecord {
		// One line per change of reason: an unplaceable instance retried with backoff
		// does not flood the log (the deployment's status shows the reason).
		s.mu.Lock()
		same := s.lastReject[c.Instance] == code+": "+reason
		s.lastReject[c.Instance] = code + ": " + reason
		if len(s.lastReject) > 10000 {
			clear(s.lastReject)
		}
		s.mu.Unlock()
		if same {
			s.log.Debug("claim rejected again", "instance", c.Instance, "code", code)
		} else {
			s.log.Info("claim rejected", "instance", c.Instance, "code", code, "reason", reason)
		}
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
		RAMMB: d.RAMMB, DiskMB: d.DiskMB, PIDs: d.PIDs, Restart: sandbox.RestartNever, Secrets: d.Secrets, MountFS: d.MountFS,
		Deployment: c.Deployment,
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
	// The node's context: a shutdown does not wait for a removal; the next start finds the
	// claim gone and removes the instance again.
	ctx, cancel := context.WithTimeout(s.ctx, s.grace+30*time.Second)
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

// cachedRecord is a record's decoded form and the bytes it was decoded from.
type cachedRecord struct {
	raw []byte
	v   any
	err error
}

// snapCache carries the last snapshot's decoded records into the next one.
type snapCache struct {
	old, next map[string]map[string]cachedRecord
}

// decodeAll decodes the raw records of coll (reusing the last snapshot's decoding of
// unchanged bytes) and hands each decodable one to fn. Records are immutable values in the
// document, so equal bytes mean an equal record.
func decodeAll[T any](c *snapCache, coll string, raw map[string][][2][]byte, dec func([]byte) (T, error), fn func(string, T)) {
	old := c.old[coll]
	next := make(map[string]cachedRecord, len(raw[coll]))
	for _, kv := range raw[coll] {
		k, b := string(kv[0]), kv[1]
		cr, ok := old[k]
		if !ok || !bytes.Equal(cr.raw, b) {
			v, err := dec(b)
			cr = cachedRecord{raw: b, v: v, err: err}
		}
		next[k] = cr
		if cr.err == nil {
			fn(k, cr.v.(T))
		}
	}
	c.next[coll] = next
}
