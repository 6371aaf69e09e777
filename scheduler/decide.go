package scheduler

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/sandbox"
	"github.com/rads-lang/constellation/sched"
)

// The scheduler's decisions, pure: a pass builds a schedState snapshot of the replicated
// state (Scheduler.snapshot), and the decider turns it into writes (decideOwner) and the
// local actions of this node (decideAgent). Time comes in the snapshot (st.now); the claim
// IDs and the restart jitter come from the decider's injected functions. The transcripts in
// testdata/ (datadriven_test.go) run these without libp2p, a node or a clock.

// decider holds the parameters of the decisions.
type decider struct {
	// claimTimeout: a claim with no answer (instance record or rejection) from a live target
	// after this long is placed again.
	claimTimeout time.Duration
	backoff      sched.Backoff
	// newClaimID names a decision (randomClaimID; a counter in tests).
	newClaimID func(now time.Time) string
	// jitter is a random float in [0, 1) for restart backoff (a seeded source in tests).
	rng *mrand.Rand
	// note reports an unexpected condition (a log line; nothing in tests).
	note func(msg string, args ...any)
}

type schedState struct {
	now    time.Time
	self   string               // node name
	selfID string               // peer ID
	status map[string]string    // peer ID -> status
	leftAt map[string]time.Time // peer ID -> when a left node left
	// deadSince: peer ID -> when a dead node was last seen alive.
	deadSince map[string]time.Time
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

func (st *schedState) alive(peerID string) bool { return st.status[peerID] == api.StatusAlive }

// defaultLeftGrace is how long the instances of a node that left gracefully stay where they are
// before they are placed again: a node restarting (an upgrade, a config change) comes back
// within it and re-adopts its running instances, so nothing moves. A node going away for
// good is drained first (`constellation drain`), or its instances move after the grace.
// A dead node's instances are placed again at once.
const defaultLeftGrace = 30 * time.Second

// lostForget is how long a lost instance's claim stays once its failover replacement runs:
// a node back within it (a partition healing, a slow restart) keeps its instances and the
// replacements go; a node back later finds its instances withdrawn.
const lostForget = 10 * time.Minute

// goneFor is how long a gone node has been gone (0 when it is not gone; unknown nodes count
// as gone forever).
func (st *schedState) goneFor(peerID string) time.Duration {
	if !st.gone(peerID) {
		return 0
	}
	switch st.status[peerID] {
	case api.StatusLeft:
		return st.now.Sub(st.leftAt[peerID]) - st.leftGrace
	case api.StatusDead:
		if t, ok := st.deadSince[peerID]; ok {
			return st.now.Sub(t)
		}
	}
	return time.Duration(math.MaxInt64)
}

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
func (s *decider) claimState(st *schedState, c ClaimRecord) (string, *RejectionRecord) {
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

// randomClaimID is a claim ID: the decision time in unix ms and 8 random hex digits.
func randomClaimID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixMilli(), 10) + "-" + hex.EncodeToString(b[:])
}

// placeItem is an instance the owner must place.
type placeItem struct {
	name     string
	slot     int
	at       int64
	avoid    []string
	replaces string
	failover bool
}

// decideOwner is the owner's part of a pass: for every deployment this node owns (the
// rendezvous winner among the members), the claims to write and delete and the status
// message. It reads only st and the decider's parameters: no I/O, no clock, no randomness
// beyond what the decider injects.
func (s *decider) decideOwner(st *schedState) *schedWrites {
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
	return &w
}

// ownDeployment reconciles one owned deployment and returns its status message.
func (s *decider) ownDeployment(st *schedState, cl *clusterView, d DeploymentRecord, cls []ClaimRecord, w *schedWrites) string {
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
	// Make-before-break pairs (drains): a running replacement retires the old instance; a
	// pending one keeps both and is left out of Reconcile.
	// Failover pairs (the old node was lost): while the old node is lost the replacement
	// holds the slot and the old claim stays; when the old node is back with its instance
	// running, the old instance stays and the replacement goes (a heal or a restart moves
	// nothing that runs); once the replacement runs and the old node has been gone longer
	// than lostForget, the old claim is deleted.
	excluded := map[string]bool{}
	replacing := map[string]bool{} // old instances with a replacement under way
	replaced := map[string]bool{}  // lost instances with a failover replacement
	for _, c := range cls {
		if c.Replaces == "" || !healthy(states[c.Instance]) {
			continue
		}
		old, ok := st.claims[c.Replaces]
		if !ok {
			continue
		}
		if c.Failover {
			replaced[old.Instance] = true
			switch {
			case states[old.Instance] == claimRunning:
				del(c.Instance) // sticky: the original runs again
				excluded[c.Instance] = true
			case states[old.Instance] == claimLost && states[c.Instance] == claimRunning && st.goneFor(old.NodeID) > lostForget:
				del(old.Instance)
			case healthy(states[old.Instance]) && states[c.Instance] == claimRunning:
				del(old.Instance) // back but not running: the replacement keeps the slot
				excluded[old.Instance] = true
			case healthy(states[old.Instance]):
				excluded[c.Instance] = true // both starting: the original first
			}
			continue
		}
		if !healthy(states[old.Instance]) {
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
	// Lost instances not yet replaced, by slot: their replacement names them (failover).
	lost := map[int]ClaimRecord{}
	for _, c := range cls {
		if states[c.Instance] == claimLost && !replaced[c.Instance] && !deleted[c.Instance] && c.Slot < d.Instances {
			if _, ok := lost[c.Slot]; !ok {
				lost[c.Slot] = c
			}
		}
	}
	var todo []placeItem
	reused := map[string]bool{}
	for _, slot := range r.Missing {
		c, isLost := lost[slot]
		if rc, ok := reuse[slot]; isLost && (!ok || !rc.Failover || rc.Replaces != c.Instance) {
			todo = append(todo, placeItem{name: s.newName(st, d.Name), slot: slot, at: st.now.UnixMilli(), replaces: c.Instance, failover: true})
			reused[c.Instance] = true // kept while its node is lost
			continue
		}
		if c, ok := reuse[slot]; ok {
			// A refused claim is placed again under its name (a refused failover
			// replacement too, still replacing its lost instance), after the delay.
			if isLost {
				reused[c.Replaces] = true
			}
			if rj := rejs[c.Instance]; rj != nil && st.now.Before(time.UnixMilli(rj.At).Add(rejectionDelay(c, rj))) {
				reused[c.Instance] = true // keep the claim; place it again once the delay passed
				continue
			}
			avoid := append(slices.Clone(c.Avoid), c.Node)
			slices.Sort(avoid)
			todo = append(todo, placeItem{name: c.Instance, slot: slot, at: c.At, avoid: slices.Compact(avoid),
				replaces: c.Replaces, failover: c.Failover})
			reused[c.Instance] = true
			continue
		}
		todo = append(todo, placeItem{name: s.newName(st, d.Name), slot: slot, at: st.now.UnixMilli()})
	}
	for _, c := range cls {
		if !healthy(states[c.Instance]) && !reused[c.Instance] && !(replaced[c.Instance] && states[c.Instance] == claimLost) {
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
func (s *decider) newName(st *schedState, dep string) string {
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

func (s *decider) statusMessage(d DeploymentRecord, states map[string]string, rejs map[string]*RejectionRecord) string {
	for _, name := range sortedKeys(rejs) {
		if r := rejs[name]; r != nil {
			return fmt.Sprintf("%s refused by %s: %s", name, r.Node, r.Reason)
		}
	}
	return ""
}

// place places todo items (grouped by their avoided nodes) and writes claims.
func (s *decider) place(st *schedState, cl *clusterView, d DeploymentRecord, todo []placeItem, w *schedWrites) string {
	cons, _ := sched.ParseConstraints(d.Constraints)
	aff, _ := sched.ParseTerms(d.Affinity)
	anti, _ := sched.ParseTerms(d.AntiAffinity)
	res := specResources(&d.Spec)
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
			Affinity: aff, AntiAffinity: anti, Priority: d.Priority, Avoid: items[0].avoid,
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
			s.note("apply plan to view", "deployment", d.Name, "err", aerr)
		}
		for _, p := range plan.Placements {
			it := byName[p.Instance]
			prio := d.Priority
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
				Node: p.Node, NodeID: st.idOf[p.Node], ClaimID: s.newClaimID(st.now), Owner: st.self,
				At: it.at, Priority: prio, Burst: burst, CPUMilli: res.CPUMilli, RAMMB: res.RAMMB, DiskMB: res.DiskMB,
				Replaces: it.replaces, Failover: it.failover, Preempts: p.Preempts, Avoid: it.avoid,
			}
			w.put(CollClaims, c.Instance, c)
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

// buildCluster builds the placement snapshot: alive nodes able to run instances, with
// their capacity, reservations and draining flag, and the instances claimed on them
// (healthy claims) or running there outside deployments.
func (s *decider) buildCluster(st *schedState) *clusterView {
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
		s.note("placement snapshot", "err", err)
		c, _ = sched.NewCluster(nil)
	}
	cv.c = c
	return cv
}

// ---- agent (target side) ----

// agentView is what this node knows of its own deployment instances beyond the snapshot.
type agentView struct {
	managed  map[string]managedInstance // this node's deployment instances
	removing map[string]bool            // being removed in the background
	local    map[string]sandbox.Info    // the runtime's view of the managed instances and claimed names
}

// agentPlan is what this node does in a pass.
type agentPlan struct {
	writes  schedWrites
	admit   []string                   // claims to admit (create the instance), in order
	adopt   []string                   // claims whose instance already runs here: manage it
	restart []string                   // failed instances to start again now
	remove  []string                   // instances whose claim is gone or moved
	managed map[string]managedInstance // new values of managed entries
	changed bool                       // the managed list changed (persist it)
}

// decideAgent decides, for every claim naming this node, whether to admit it, supervise it
// (restart with backoff, give it up after repeated failures) or leave it; which local
// deployment instances to remove; and which of this node's rejections are garbage.
func (s *decider) decideAgent(st *schedState, v agentView) agentPlan {
	plan := agentPlan{managed: map[string]managedInstance{}}
	var mine []ClaimRecord
	for _, c := range st.claims {
		if c.NodeID == st.selfID {
			mine = append(mine, c)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Instance < mine[j].Instance })
	for _, c := range mine {
		d, ok := st.deps[c.Deployment]
		if !ok || d.Deleted || v.removing[c.Instance] {
			continue
		}
		if mi, ok := v.managed[c.Instance]; ok {
			upd := mi.ClaimID != c.ClaimID
			mi.ClaimID = c.ClaimID
			if s.supervise(st, c, &mi, v.local, &plan) {
				upd = true
			}
			if upd {
				plan.managed[c.Instance] = mi
				plan.changed = true
			}
			continue
		}
		if r, ok := st.rejs[c.Instance+"@"+st.selfID]; ok && r.ClaimID == c.ClaimID {
			continue // refused already
		}
		if old, ok := st.claims[c.Replaces]; ok && c.Failover {
			if state, _ := s.claimState(st, old); state == claimRunning {
				// The lost instance this replaces runs again (a heal, a restart): the owner
				// withdraws the replacement, so starting it would only be churn.
				continue
			}
		}
		if in, ok := v.local[c.Instance]; ok && slices.Equal(in.Spec.Command, d.Command) {
			// The instance runs here already (the managed list was lost, or this node
			// created it just before a crash): take it over instead of refusing the claim.
			plan.adopt = append(plan.adopt, c.Instance)
			plan.changed = true
			continue
		}
		plan.admit = append(plan.admit, c.Instance)
		plan.changed = true
	}
	// Local deployment instances whose claim is gone or moved.
	for _, name := range sortedKeys(v.managed) {
		if c, ok := st.claims[name]; (!ok || c.NodeID != st.selfID) && !v.removing[name] {
			plan.remove = append(plan.remove, name)
		}
	}
	// Rejections of ours for claims that moved on are garbage.
	for _, k := range sortedKeys(st.rejs) {
		r := st.rejs[k]
		if r.NodeID != st.selfID {
			continue
		}
		if c, ok := st.claims[r.Instance]; !ok || (c.NodeID != st.selfID && st.now.Sub(time.UnixMilli(r.At)) > time.Minute) {
			plan.writes.del(CollRejections, k)
		}
	}
	return plan
}

// supervise decides about a local deployment instance: a failed one is started again after
// a backoff, and given up (a "failed" rejection: the owner places it elsewhere) after
// repeated failures here. It reports whether mi changed.
func (s *decider) supervise(st *schedState, c ClaimRecord, mi *managedInstance, local map[string]sandbox.Info, plan *agentPlan) bool {
	in, ok := local[c.Instance]
	if !ok {
		return false
	}
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
			plan.writes.put(CollRejections, c.Instance+"@"+st.selfID, RejectionRecord{Instance: c.Instance, Node: st.self,
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
	plan.restart = append(plan.restart, c.Instance)
	return true
}

// backWindow bounds how long a restarted node counts as back before the failure detector
// says so (see backFromDead).
const backWindow = 10 * time.Second

// backFromDead reports whether a node the failure detector still judges dead has restarted
// since it was last seen: its membership record (written at its start, gossiped at once)
// says it is back before this node's detector re-admits it. Acting on the stale "dead"
// would place replacements that its owner, which sees it back, removes at once (a restarted
// owner's ping-pong). Only a restart within backWindow counts: a node that restarted and
// died again stays dead.
func backFromDead(x api.NodeInfo, now time.Time) bool {
	return x.Status == api.StatusDead && !x.StartedAt.IsZero() && x.StartedAt.After(x.LastSeen) &&
		now.Sub(x.StartedAt) < backWindow
}
