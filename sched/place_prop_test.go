package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

var (
	constraintPool = []string{"node.region=a", "node.region!=b", "node.type in (x,z)", "node.type not in (x)", "node.name!=n0", "node.gpu=true"}
	termPool       = []string{"service=s0", "service=s1;weight=80", "service!=s2;weight=10", "deployment in (d0,d1)", "service=s0;hard", "service=s1;hard", "deployment=d2;hard"}
)

func drawNodes(t *rapid.T) []Node {
	n := rapid.IntRange(1, 10).Draw(t, "nodes")
	ns := make([]Node, n)
	for i := range ns {
		nd := Node{
			ID: fmt.Sprintf("n%d", i),
			Labels: map[string]string{
				"region": rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "region"),
				"type":   rapid.SampledFrom([]string{"x", "y", "z"}).Draw(t, "type"),
			},
			Capacity: Resources{
				CPUMilli: int64(rapid.IntRange(0, 8).Draw(t, "cpu")) * 1000,
				RAMMB:    int64(rapid.IntRange(0, 8).Draw(t, "ram")) * 512,
				DiskMB:   int64(rapid.IntRange(0, 4).Draw(t, "disk")) * 1000,
			},
			Draining:     rapid.IntRange(0, 9).Draw(t, "draining") == 0,
			MaxInstances: rapid.SampledFrom([]int{0, 0, 0, 1, 3, 6}).Draw(t, "maxInst"),
		}
		if rapid.Bool().Draw(t, "reserved") {
			nd.Reserved = Resources{CPUMilli: int64(rapid.IntRange(0, 2).Draw(t, "rcpu")) * 500, RAMMB: int64(rapid.IntRange(0, 2).Draw(t, "rram")) * 256}
		}
		k := rapid.IntRange(0, 6).Draw(t, "existing")
		for j := range k {
			d := rapid.IntRange(0, 3).Draw(t, "dep")
			nd.Instances = append(nd.Instances, Instance{
				ID: fmt.Sprintf("old-%d-%d", i, j), Deployment: fmt.Sprintf("d%d", d),
				Labels:    map[string]string{"service": fmt.Sprintf("s%d", rapid.IntRange(0, 2).Draw(t, "svc"))},
				Priority:  rapid.IntRange(0, 100).Draw(t, "prio"),
				Resources: Resources{CPUMilli: int64(rapid.IntRange(0, 4).Draw(t, "icpu")) * 250, RAMMB: int64(rapid.IntRange(0, 4).Draw(t, "iram")) * 128},
			})
		}
		ns[i] = nd
	}
	return ns
}

func drawRequest(t *rapid.T) Request {
	req := Request{
		Deployment: fmt.Sprintf("d%d", rapid.IntRange(0, 4).Draw(t, "reqDep")),
		Labels:     map[string]string{"service": fmt.Sprintf("s%d", rapid.IntRange(0, 2).Draw(t, "reqSvc"))},
		Count:      rapid.IntRange(1, 12).Draw(t, "count"),
		Resources: Resources{
			CPUMilli: int64(rapid.IntRange(0, 6).Draw(t, "reqCPU")) * 250,
			RAMMB:    int64(rapid.IntRange(0, 6).Draw(t, "reqRAM")) * 128,
			DiskMB:   int64(rapid.IntRange(0, 2).Draw(t, "reqDisk")) * 500,
		},
		Strategy: rapid.SampledFrom([]Strategy{StrategySpread, StrategyBinpack, StrategyRandom}).Draw(t, "strategy"),
		Priority: rapid.IntRange(0, 100).Draw(t, "reqPrio"),
	}
	if rapid.Bool().Draw(t, "spreadBy") {
		req.SpreadBy = "region"
	}
	for _, e := range rapid.SliceOfNDistinct(rapid.SampledFrom(constraintPool), 0, 2, rapid.ID[string]).Draw(t, "constraints") {
		c, err := ParseConstraint(e)
		if err != nil {
			t.Fatal(err)
		}
		req.Constraints = append(req.Constraints, c)
	}
	for _, e := range rapid.SliceOfNDistinct(rapid.SampledFrom(termPool), 0, 2, rapid.ID[string]).Draw(t, "affinity") {
		tm, _ := ParseTerm(e)
		req.Affinity = append(req.Affinity, tm)
	}
	for _, e := range rapid.SliceOfNDistinct(rapid.SampledFrom(termPool), 0, 2, rapid.ID[string]).Draw(t, "anti") {
		tm, _ := ParseTerm(e)
		req.AntiAffinity = append(req.AntiAffinity, tm)
	}
	if rapid.Bool().Draw(t, "avoid") {
		req.Avoid = []string{"n1"}
	}
	return req
}

// sim is a brute-force model of a cluster: plain lists, no aggregates.
type sim struct {
	nodes map[string]*Node
}

func newSim(ns []Node) *sim {
	s := &sim{nodes: map[string]*Node{}}
	for _, n := range ns {
		n := n
		n.Instances = nil
		for _, in := range n.Instances {
			_ = in
		}
		s.nodes[n.ID] = &n
	}
	for _, n := range ns {
		for _, in := range n.Instances {
			in.Labels = mergedLabels(in.Labels, in.Deployment, in.Namespace)
			s.nodes[n.ID].Instances = append(s.nodes[n.ID].Instances, in)
		}
	}
	return s
}

func (s *sim) used(n *Node) Resources {
	var u Resources
	for _, in := range n.Instances {
		u = u.Add(in.Resources)
	}
	return u
}

func (s *sim) matches(n *Node, t Term) bool {
	for _, in := range n.Instances {
		if t.Matches(in.Labels) {
			return true
		}
	}
	return false
}

// feasible reports whether one more instance of req fits on n, and why not.
func (s *sim) feasible(n *Node, req *Request) (bool, string) {
	if n.Draining {
		return false, "draining"
	}
	for _, c := range req.Constraints {
		if !c.Match(n) {
			return false, "constraint " + c.String()
		}
	}
	for _, t := range req.Affinity {
		if t.Hard && !s.matches(n, t) {
			return false, "hard affinity " + t.String()
		}
	}
	for _, t := range req.AntiAffinity {
		if t.Hard && s.matches(n, t) {
			return false, "hard anti-affinity " + t.String()
		}
	}
	if !req.Resources.Fits(n.Capacity.Sub(n.Reserved).Sub(s.used(n))) {
		return false, "resources"
	}
	if n.MaxInstances > 0 && len(n.Instances) >= n.MaxInstances {
		return false, "max instances"
	}
	return true, ""
}

func (s *sim) affScore(n *Node, req *Request) int {
	sc := 0
	for _, t := range req.Affinity {
		if !t.Hard && s.matches(n, t) {
			sc += t.Weight
		}
	}
	for _, t := range req.AntiAffinity {
		if !t.Hard && s.matches(n, t) {
			sc -= t.Weight
		}
	}
	return sc
}

func (s *sim) remove(node, id string) (Instance, bool) {
	n := s.nodes[node]
	for i, in := range n.Instances {
		if in.ID == id {
			n.Instances = slices.Delete(n.Instances, i, i+1)
			return in, true
		}
	}
	return Instance{}, false
}

func (s *sim) sortedIDs() []string {
	var ids []string
	for id := range s.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestPlaceNeverInfeasible replays every plan on the brute-force model: each placement lands
// on a node that is feasible at that moment (after its own evictions), evictions respect the
// priority gap, the choice is the best by affinity tier, and a failure means nothing fits.
func TestPlaceNeverInfeasible(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := drawNodes(t)
		req := drawRequest(t)
		noPreempt := rapid.Bool().Draw(t, "noPreempt")
		seed := rapid.Uint64().Draw(t, "seed")
		opts := func() Options { return Options{Rand: rand.New(rand.NewPCG(seed, 0)), DisablePreemption: noPreempt} }
		plan, err := Place(req, ns, opts())
		if err != nil && !errors.Is(err, ErrInsufficient) && !errors.Is(err, ErrUnsatisfiable) && !errors.Is(err, ErrNoNodes) {
			t.Fatalf("unexpected error class: %v", err)
		}
		// Determinism, also with nodes in another order.
		rev := slices.Clone(ns)
		slices.Reverse(rev)
		plan2, err2 := Place(req, rev, opts())
		if !reflect.DeepEqual(plan, plan2) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("not deterministic:\n%+v %v\n%+v %v", plan, err, plan2, err2)
		}
		s := newSim(ns)
		ids := req.IDs()
		if len(plan.Placements) > len(ids) || (err == nil) != (len(plan.Placements) == len(ids)) {
			t.Fatalf("%d placements of %d with error %v", len(plan.Placements), len(ids), err)
		}
		self := mergedLabels(req.Labels, req.Deployment, req.Namespace)
		for i, pl := range plan.Placements {
			if pl.Instance != ids[i] {
				t.Fatalf("placement %d is %s; want %s", i, pl.Instance, ids[i])
			}
			n := s.nodes[pl.Node]
			if n == nil {
				t.Fatalf("placement on unknown node %s", pl.Node)
			}
			if len(pl.Preempts) == 0 {
				s.checkBest(t, req, pl.Node)
			}
			for _, v := range pl.Preempts {
				in, ok := s.remove(pl.Node, v)
				if !ok {
					t.Fatalf("%s preempts %s, which is not on %s", pl.Instance, v, pl.Node)
				}
				if noPreempt || in.Priority > req.Priority-PreemptionGap {
					t.Fatalf("preempted %s (priority %d) for priority %d (preemption disabled: %v)", v, in.Priority, req.Priority, noPreempt)
				}
			}
			if ok, why := s.feasible(n, &req); !ok {
				t.Fatalf("%s placed on infeasible %s: %s", pl.Instance, pl.Node, why)
			}
			n.Instances = append(n.Instances, Instance{ID: pl.Instance, Deployment: req.Deployment, Labels: self, Priority: req.Priority, Resources: req.Resources})
		}
		nEv := 0
		for _, pl := range plan.Placements {
			nEv += len(pl.Preempts)
		}
		if nEv != len(plan.Evictions) {
			t.Fatalf("%d preempts but %d evictions", nEv, len(plan.Evictions))
		}
		if err == nil {
			return
		}
		// Completeness: nothing fits one more instance, even after evicting every eligible
		// victim (when preemption is on and no hard term could be broken by evicting).
		hard := false
		for _, tm := range slices.Concat(req.Affinity, req.AntiAffinity) {
			hard = hard || tm.Hard
		}
		for _, id := range s.sortedIDs() {
			n := s.nodes[id]
			if ok, _ := s.feasible(n, &req); ok {
				t.Fatalf("Place failed (%v) but %s fits one more instance", err, id)
			}
			if noPreempt || hard || n.Draining {
				continue
			}
			trial := *n
			trial.Instances = slices.DeleteFunc(slices.Clone(n.Instances), func(in Instance) bool {
				return in.Priority <= req.Priority-PreemptionGap
			})
			if ok, _ := s.feasible(&trial, &req); ok {
				t.Fatalf("Place failed (%v) but evicting low-priority instances on %s would make room", err, id)
			}
		}
	})
}

// checkBest verifies that node is among the best feasible nodes for the next instance by the
// documented order (avoid, affinity score, strategy), computed by brute force.
func (s *sim) checkBest(t *rapid.T, req Request, node string) {
	type rankT struct {
		notAvoided bool
		aff        int
		s1, s2, s3 int64
	}
	rank := func(n *Node) rankT {
		r := rankT{notAvoided: !slices.Contains(req.Avoid, n.ID), aff: s.affScore(n, &req)}
		used := n.Reserved.Add(s.used(n)).Add(req.Resources)
		util := frac(used.CPUMilli, n.Capacity.CPUMilli) + frac(used.RAMMB, n.Capacity.RAMMB)
		if req.Resources.DiskMB > 0 {
			util += frac(used.DiskMB, n.Capacity.DiskMB)
		}
		dcount := 0
		for _, in := range n.Instances {
			if in.Deployment == req.Deployment {
				dcount++
			}
		}
		switch req.Strategy {
		case StrategyBinpack:
			r.s1 = util
		case StrategyRandom:
		default:
			if req.SpreadBy != "" {
				g := 0
				for _, m := range s.nodes {
					if m.Labels[req.SpreadBy] == n.Labels[req.SpreadBy] && !m.Draining {
						ok := true
						for _, c := range req.Constraints {
							ok = ok && c.Match(m)
						}
						if ok {
							for _, in := range m.Instances {
								if in.Deployment == req.Deployment {
									g++
								}
							}
						}
					}
				}
				r.s1 = -int64(g)
			}
			r.s2, r.s3 = -int64(dcount), -util
		}
		return r
	}
	less := func(a, b rankT) bool {
		if a.notAvoided != b.notAvoided {
			return !a.notAvoided
		}
		if a.aff != b.aff {
			return a.aff < b.aff
		}
		if a.s1 != b.s1 {
			return a.s1 < b.s1
		}
		if a.s2 != b.s2 {
			return a.s2 < b.s2
		}
		return a.s3 < b.s3
	}
	got := rank(s.nodes[node])
	for _, id := range s.sortedIDs() {
		n := s.nodes[id]
		if ok, _ := s.feasible(n, &req); ok && less(got, rank(n)) {
			t.Fatalf("chose %s %+v but %s ranks higher %+v", node, got, id, rank(n))
		}
	}
}

// TestSpreadEvenWhenFeasible: when every eligible node can take all the instances, spread
// leaves per-node counts of the deployment within 1 of each other (and per-region counts too
// with SpreadBy).
func TestSpreadEvenWhenFeasible(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := drawNodes(t)
		req := drawRequest(t)
		req.Strategy, req.Affinity, req.AntiAffinity, req.Avoid = StrategySpread, nil, nil, nil
		req.Deployment = "fresh" // no existing instances of it
		total := req.Resources.Scale(int64(req.Count))
		var eligible []string
		for i := range ns {
			ns[i].MaxInstances = 0
			ns[i].Capacity = ns[i].Capacity.Add(total).Add(ns[i].Reserved)
			for _, in := range ns[i].Instances {
				ns[i].Capacity = ns[i].Capacity.Add(in.Resources)
			}
			ok := !ns[i].Draining
			for _, c := range req.Constraints {
				ok = ok && c.Match(&ns[i])
			}
			if ok {
				eligible = append(eligible, ns[i].ID)
			}
		}
		plan, err := Place(req, ns, Options{})
		if len(eligible) == 0 {
			if err == nil {
				t.Fatal("placed with no eligible node")
			}
			return
		}
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		per := perNode(plan)
		lo, hi := req.Count, 0
		for _, id := range eligible {
			lo, hi = min(lo, per[id]), max(hi, per[id])
		}
		if req.SpreadBy == "" && hi-lo > 1 {
			t.Fatalf("spread counts %v over eligible %v: difference %d > 1", per, eligible, hi-lo)
		}
		if req.SpreadBy != "" {
			groups := map[string]int{}
			for i := range ns {
				if slices.Contains(eligible, ns[i].ID) {
					groups[ns[i].Labels["region"]] += per[ns[i].ID]
				}
			}
			glo, ghi := req.Count, 0
			for _, v := range groups {
				glo, ghi = min(glo, v), max(ghi, v)
			}
			if ghi-glo > 1 {
				t.Fatalf("spread by region %v: difference %d > 1", groups, ghi-glo)
			}
		}
	})
}

// TestBinpackFewestNodes: on uniform empty nodes and uniform instances, binpack uses exactly
// ceil(total / fit-per-node) nodes.
func TestBinpackFewestNodes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := Resources{
			CPUMilli: int64(rapid.IntRange(1, 8).Draw(t, "cpu")) * 125,
			RAMMB:    int64(rapid.IntRange(1, 8).Draw(t, "ram")) * 64,
		}
		capc := Resources{CPUMilli: int64(rapid.IntRange(1, 16).Draw(t, "ncpu")) * 500, RAMMB: int64(rapid.IntRange(1, 16).Draw(t, "nram")) * 256}
		fit := min(capc.CPUMilli/r.CPUMilli, capc.RAMMB/r.RAMMB)
		if fit == 0 {
			return
		}
		nNodes := rapid.IntRange(1, 20).Draw(t, "nodes")
		count := rapid.IntRange(1, int(fit)*nNodes).Draw(t, "count")
		plan, err := Place(Request{Deployment: "b", Count: count, Resources: r, Strategy: StrategyBinpack}, nodes(nNodes, capc), Options{})
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		want := (int64(count) + fit - 1) / fit
		if got := len(perNode(plan)); int64(got) != want {
			t.Fatalf("binpack used %d nodes for %d instances of fit %d; want %d", got, count, fit, want)
		}
	})
}
