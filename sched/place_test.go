package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// nodes returns n nodes n0..n{n-1} with the given capacity.
func nodes(n int, capc Resources) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{ID: fmt.Sprintf("n%d", i), Capacity: capc}
	}
	return out
}

var small = Resources{CPUMilli: 4000, RAMMB: 4096, DiskMB: 10000}

func mustConstraints(t testing.TB, exprs ...string) []Constraint {
	t.Helper()
	cs, err := ParseConstraints(exprs)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func mustTerms(t testing.TB, exprs ...string) []Term {
	t.Helper()
	ts, err := ParseTerms(exprs)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func perNode(p Plan) map[string]int {
	m := map[string]int{}
	for _, pl := range p.Placements {
		m[pl.Node]++
	}
	return m
}

func inst(id, dep string, prio int, r Resources, labels ...string) Instance {
	m := map[string]string{}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return Instance{ID: id, Deployment: dep, Labels: m, Priority: prio, Resources: r}
}

func TestPlaceStrategies(t *testing.T) {
	r := Resources{CPUMilli: 500, RAMMB: 512}
	regions := func() []Node {
		ns := nodes(5, small)
		for i, reg := range []string{"a", "a", "a", "b", "c"} {
			ns[i].Labels = map[string]string{"region": reg}
		}
		return ns
	}
	tests := []struct {
		name  string
		nodes func() []Node
		req   Request
		want  map[string]int // instances per node
	}{
		{"spread one per node", func() []Node { return nodes(3, small) },
			Request{Count: 3, Strategy: StrategySpread}, map[string]int{"n0": 1, "n1": 1, "n2": 1}},
		{"spread evens out existing instances", func() []Node {
			ns := nodes(3, small)
			ns[0].Instances = []Instance{inst("web-a", "web", 50, r), inst("web-b", "web", 50, r)}
			ns[1].Instances = []Instance{inst("web-c", "web", 50, r)}
			return ns
		}, Request{Count: 3}, map[string]int{"n1": 1, "n2": 2}},
		{"spread ignores other deployments' counts but prefers less load", func() []Node {
			ns := nodes(2, small)
			ns[0].Instances = []Instance{inst("db-0", "db", 50, Resources{CPUMilli: 3000, RAMMB: 3000})}
			return ns
		}, Request{Count: 1}, map[string]int{"n1": 1}},
		{"spread by region", regions, Request{Count: 6, SpreadBy: "region"}, nil}, // checked below
		{"binpack fullest feasible first", func() []Node {
			ns := nodes(3, small)
			ns[0].Instances = []Instance{inst("x-0", "x", 50, Resources{CPUMilli: 2000, RAMMB: 2048})}
			ns[2].Instances = []Instance{inst("x-1", "x", 50, Resources{CPUMilli: 3000, RAMMB: 3072})}
			return ns
		}, Request{Count: 2, Strategy: StrategyBinpack}, map[string]int{"n2": 2}},
		{"binpack skips a full node", func() []Node {
			ns := nodes(3, small)
			ns[2].Instances = []Instance{inst("x-1", "x", 50, Resources{CPUMilli: 3800, RAMMB: 3072})}
			ns[0].Instances = []Instance{inst("x-0", "x", 50, Resources{CPUMilli: 1000, RAMMB: 1024})}
			return ns
		}, Request{Count: 1, Strategy: StrategyBinpack}, map[string]int{"n0": 1}},
		{"binpack fills one node before the next", func() []Node { return nodes(4, small) },
			Request{Count: 10, Strategy: StrategyBinpack}, nil}, // checked below: 8 + 2
		{"constraint region", regions,
			Request{Count: 2, Constraints: mustConstraints(t, "node.region in (b,c)")}, map[string]int{"n3": 1, "n4": 1}},
		{"constraint name", regions,
			Request{Count: 2, Constraints: mustConstraints(t, "node.name=n2")}, map[string]int{"n2": 2}},
		{"affinity to cache", func() []Node {
			ns := nodes(3, small)
			ns[1].Instances = []Instance{inst("cache-0", "cache", 50, r, "service=cache")}
			return ns
		}, Request{Count: 2, Affinity: mustTerms(t, "service=cache")}, map[string]int{"n1": 2}},
		{"soft anti-affinity avoids replicas", func() []Node {
			ns := nodes(3, small)
			ns[0].Instances = []Instance{inst("rep-0", "rep", 50, r, "service=db-replica")}
			ns[1].Instances = []Instance{inst("rep-1", "rep", 50, r, "service=db-replica")}
			return ns
		}, Request{Count: 2, Strategy: StrategyBinpack, AntiAffinity: mustTerms(t, "service=db-replica")}, map[string]int{"n2": 2}},
		{"heavier affinity term wins", func() []Node {
			ns := nodes(2, small)
			ns[0].Instances = []Instance{inst("c-0", "c", 50, r, "service=cache")}
			ns[1].Instances = []Instance{inst("q-0", "q", 50, r, "service=queue")}
			return ns
		}, Request{Count: 1, Affinity: mustTerms(t, "service=cache;weight=20", "service=queue;weight=70")}, map[string]int{"n1": 1}},
		{"self anti-affinity spreads one per node even under binpack", func() []Node { return nodes(3, small) },
			Request{Count: 3, Strategy: StrategyBinpack, Labels: map[string]string{"service": "db"},
				AntiAffinity: mustTerms(t, "service=db;hard")}, map[string]int{"n0": 1, "n1": 1, "n2": 1}},
		{"avoided node last", func() []Node { return nodes(2, Resources{CPUMilli: 1000, RAMMB: 1024}) },
			Request{Count: 3, Avoid: []string{"n0"}}, map[string]int{"n1": 2, "n0": 1}},
		{"draining node excluded", func() []Node {
			ns := nodes(2, small)
			ns[0].Draining = true
			return ns
		}, Request{Count: 2}, map[string]int{"n1": 2}},
		{"reservations are not free", func() []Node {
			ns := nodes(2, small)
			ns[0].Reserved = Resources{CPUMilli: 3800}
			return ns
		}, Request{Count: 2}, map[string]int{"n1": 2}},
		{"max instances", func() []Node {
			ns := nodes(2, small)
			ns[0].MaxInstances = 1
			return ns
		}, Request{Count: 5, Strategy: StrategyBinpack, Resources: Resources{CPUMilli: 1000}}, map[string]int{"n0": 1, "n1": 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Deployment = "web"
			if req.Resources.IsZero() {
				req.Resources = r
			}
			p, err := Place(req, tt.nodes(), Options{})
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			got := perNode(p)
			if tt.name == "spread by region" { // a:2 (on two distinct nodes), b:2, c:2
				a := got["n0"] + got["n1"] + got["n2"]
				if a != 2 || got["n3"] != 2 || got["n4"] != 2 || max(got["n0"], got["n1"], got["n2"]) != 1 {
					t.Fatalf("spread by region placed %v; want 2 per region, at most 1 per node in region a", got)
				}
				return
			}
			if tt.want == nil { // binpack 10 on 4 nodes of 8
				counts := slices.Sorted(func(yield func(int) bool) {
					for _, v := range got {
						yield(v)
					}
				})
				if !reflect.DeepEqual(counts, []int{2, 8}) {
					t.Fatalf("binpack per-node counts %v; want [2 8]", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("placements %v; want %v", got, tt.want)
			}
		})
	}
}

func TestPlaceRandom(t *testing.T) {
	req := Request{Deployment: "w", Count: 1, Strategy: StrategyRandom, Resources: Resources{CPUMilli: 100}}
	ns := nodes(5, small)
	if _, err := Place(req, ns, Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("random without Rand: %v; want ErrInvalid", err)
	}
	c, err := NewCluster(ns)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seed := range uint64(500) {
		p1, err := c.Place(req, Options{Rand: rand.New(rand.NewPCG(seed, 1))})
		if err != nil {
			t.Fatal(err)
		}
		p2, _ := c.Place(req, Options{Rand: rand.New(rand.NewPCG(seed, 1))})
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("seed %d: %v then %v", seed, p1, p2)
		}
		seen[p1.Placements[0].Node]++
	}
	for _, n := range ns {
		if seen[n.ID] < 60 { // expectation 100 each
			t.Errorf("random placed %d of 500 on %s; want roughly 100 (%v)", seen[n.ID], n.ID, seen)
		}
	}
	// Random still honours affinity first.
	ns[3].Instances = []Instance{inst("c-0", "c", 50, Resources{}, "service=cache")}
	req.Affinity = mustTerms(t, "service=cache")
	for seed := range uint64(20) {
		p, err := Place(req, ns, Options{Rand: rand.New(rand.NewPCG(seed, 2))})
		if err != nil || p.Placements[0].Node != "n3" {
			t.Fatalf("random with affinity: %v, %v; want n3", p, err)
		}
	}
}

func TestPlaceErrors(t *testing.T) {
	ns := nodes(3, small)
	ns[0].Labels = map[string]string{"region": "eu"}
	ns[2].Instances = []Instance{inst("big-0", "big", 50, Resources{RAMMB: 3840})}
	ns[1].Instances = []Instance{inst("big-1", "big", 50, Resources{RAMMB: 3000})}
	ns[0].Instances = []Instance{inst("big-2", "big", 50, Resources{RAMMB: 3500})}
	tests := []struct {
		name    string
		req     Request
		class   error
		msg     []string
		nPlaced int
	}{
		{"unsatisfiable constraint", Request{Count: 1, Constraints: mustConstraints(t, "node.region=us-east")},
			ErrUnsatisfiable, []string{"no node satisfies node.region=us-east (3 nodes checked)"}, 0},
		{"unsatisfiable conjunction", Request{Count: 1, Constraints: mustConstraints(t, "node.region=eu", "node.name!=n0")},
			ErrUnsatisfiable, []string{"no node satisfies all of node.region=eu (rules out 2), node.name!=n0 (rules out 1)"}, 0},
		{"insufficient ram", Request{Count: 1, Resources: Resources{RAMMB: 2048}},
			ErrInsufficient, []string{"insufficient ram_mb: asked 2048, largest free 1096 on n1 (3 nodes short)"}, 0},
		{"partial", Request{Count: 5, Resources: Resources{RAMMB: 500}},
			ErrInsufficient, []string{"cannot place web-3 (2 instances unplaced)", "insufficient ram_mb: asked 500, largest free 256 on n2"}, 3},
		{"cpu in cores", Request{Count: 1, Resources: Resources{CPUMilli: 4500}},
			ErrInsufficient, []string{"insufficient cpu_cores: asked 4.5, largest free 4 on n0"}, 0},
		{"hard affinity", Request{Count: 1, Affinity: mustTerms(t, "service=cache;hard")},
			ErrUnsatisfiable, []string{"no node satisfies affinity service=cache;hard"}, 0},
		{"constraint plus shortage", Request{Count: 1, Resources: Resources{RAMMB: 1000}, Constraints: mustConstraints(t, "node.name!=n1")},
			ErrInsufficient, []string{"insufficient ram_mb: asked 1000, largest free 596 on n0 (2 nodes short); node.name!=n1 ruled out 1 nodes"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Deployment = "web"
			p, err := Place(tt.req, ns, Options{})
			var pe *PlacementError
			if !errors.Is(err, tt.class) || !errors.As(err, &pe) {
				t.Fatalf("Place error %v; want %v", err, tt.class)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q; want it to contain %q", err, m)
				}
			}
			if len(p.Placements) != tt.nPlaced {
				t.Errorf("%d placements before the error; want %d", len(p.Placements), tt.nPlaced)
			}
		})
	}
	if _, err := Place(Request{Deployment: "w", Count: 1}, nil, Options{}); !errors.Is(err, ErrNoNodes) {
		t.Errorf("empty cluster: %v; want ErrNoNodes", err)
	}
	bad := []Request{
		{Count: 1},
		{Deployment: "w"},
		{Deployment: "w", Count: 1, Priority: 101},
		{Deployment: "w", Count: 1, Strategy: "fast"},
		{Deployment: "w", Instances: []string{"a", "a"}},
		{Deployment: "w", Count: 1, Resources: Resources{RAMMB: -1}},
		{Deployment: "w", Count: 1, Affinity: []Term{{Key: "k", Op: OpEq, Values: []string{"v"}}}},
		{Deployment: "w", Count: 1, Constraints: []Constraint{{Attr: "k"}}},
	}
	for _, r := range bad {
		if _, err := Place(r, ns, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Place(%+v) error %v; want ErrInvalid", r, err)
		}
	}
}

func TestPreemption(t *testing.T) {
	r1 := Resources{CPUMilli: 1000, RAMMB: 1024}
	build := func() []Node {
		ns := nodes(3, small)
		// n0: four low-priority (20) instances; n1: two priority-40 big ones; n2: priority 45.
		for i := range 4 {
			ns[0].Instances = append(ns[0].Instances, inst(fmt.Sprintf("batch-%d", i), "batch", 20, r1))
		}
		ns[1].Instances = []Instance{inst("etl-0", "etl", 40, Resources{CPUMilli: 2000, RAMMB: 2048}), inst("etl-1", "etl", 40, Resources{CPUMilli: 2000, RAMMB: 2048})}
		ns[2].Instances = []Instance{inst("svc-0", "svc", 45, small)}
		return ns
	}
	t.Run("fewest victims", func(t *testing.T) {
		req := Request{Deployment: "api", Count: 1, Priority: 60, Resources: Resources{CPUMilli: 2000, RAMMB: 2048}}
		p, err := Place(req, build(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		// n1 needs one victim (priority 40), n0 two (priority 20): fewest wins.
		if p.Placements[0].Node != "n1" || len(p.Evictions) != 1 || p.Evictions[0].Instance.ID != "etl-0" {
			t.Fatalf("plan %+v; want api-0 on n1 evicting etl-0", p)
		}
		if !reflect.DeepEqual(p.Placements[0].Preempts, []string{"etl-0"}) || p.Evictions[0].By != "api-0" {
			t.Fatalf("plan %+v: Preempts/By wrong", p)
		}
	})
	t.Run("lowest priority on ties", func(t *testing.T) {
		req := Request{Deployment: "api", Count: 1, Priority: 60, Resources: r1}
		p, err := Place(req, build(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Placements[0].Node != "n0" || len(p.Evictions) != 1 || p.Evictions[0].Instance.Priority != 20 {
			t.Fatalf("plan %+v; want one priority-20 victim on n0", p)
		}
	})
	t.Run("gap of 10", func(t *testing.T) {
		req := Request{Deployment: "api", Count: 1, Priority: 29, Resources: r1}
		_, err := Place(req, build(), Options{})
		var pe *PlacementError
		if !errors.As(err, &pe) || !pe.PreemptTried || !errors.Is(err, ErrInsufficient) {
			t.Fatalf("priority 29 vs 20: %v; want ErrInsufficient after trying preemption", err)
		}
		req.Priority = 30
		if p, err := Place(req, build(), Options{}); err != nil || len(p.Evictions) != 1 {
			t.Fatalf("priority 30 vs 20: %+v, %v; want one eviction", p, err)
		}
		if _, err := Place(req, build(), Options{DisablePreemption: true}); !errors.Is(err, ErrInsufficient) {
			t.Fatalf("preemption disabled: %v", err)
		}
	})
	t.Run("several instances and apply", func(t *testing.T) {
		c, err := NewCluster(build())
		if err != nil {
			t.Fatal(err)
		}
		req := Request{Deployment: "api", Count: 5, Priority: 90, Resources: r1}
		p, err := c.Place(req, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Evictions) != 5 {
			t.Fatalf("%d evictions; want 5 (each placement frees exactly its own room): %+v", len(p.Evictions), p)
		}
		if err := c.Apply(req, p); err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Evictions {
			if _, _, ok := c.Instance(ev.Instance.ID); ok {
				t.Errorf("evicted %s still present", ev.Instance.ID)
			}
		}
		for _, n := range c.NodeIDs() {
			used, _, _ := c.NodeUsage(n)
			if !used.Fits(small) {
				t.Errorf("node %s overcommitted after apply: %+v", n, used)
			}
		}
	})
}

func TestPlaceDeterministicAcrossInsertionOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ns := genCluster(rng, 40, 300)
	for _, strat := range []Strategy{StrategySpread, StrategyBinpack, StrategyRandom} {
		req := Request{Deployment: "dep-3", Count: 20, Strategy: strat, SpreadBy: "region",
			Resources: Resources{CPUMilli: 300, RAMMB: 256}, Affinity: mustTerms(t, "service=s1;weight=30"),
			AntiAffinity: mustTerms(t, "service=s2")}
		want, err := Place(req, ns, Options{Rand: rand.New(rand.NewPCG(7, 7))})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			shuffled := slices.Clone(ns)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got, err := Place(req, shuffled, Options{Rand: rand.New(rand.NewPCG(7, 7))})
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: plan differs with node order:\n%+v\n%+v (%v)", strat, got, want, err)
			}
		}
	}
}

func TestClusterIncremental(t *testing.T) {
	c, err := NewCluster(nodes(2, small))
	if err != nil {
		t.Fatal(err)
	}
	r := Resources{CPUMilli: 1000, RAMMB: 100}
	if err := c.AddInstance("n0", Instance{ID: "a-0", Deployment: "a", Namespace: "team", Resources: r}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddInstance("n0", Instance{ID: "a-0", Deployment: "a", Resources: r}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate instance: %v", err)
	}
	if err := c.AddInstance("nx", Instance{ID: "a-1", Deployment: "a"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	if u := c.NamespaceUsage("team"); u != (Usage{1000, 100, 1}) {
		t.Fatalf("namespace usage %+v", u)
	}
	// Spread sees a-0 on n0.
	p, err := c.Place(Request{Deployment: "a", Namespace: "team", Instances: []string{"a-1"}, Resources: r}, Options{})
	if err != nil || p.Placements[0].Node != "n1" {
		t.Fatalf("plan %+v, %v; want a-1 on n1", p, err)
	}
	if err := c.Apply(Request{Deployment: "a", Namespace: "team", Resources: r}, p); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(Request{Deployment: "a", Resources: r}, p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("applying twice: %v", err)
	}
	moved, err := c.RemoveNode("n1")
	if err != nil || len(moved) != 1 || moved[0].ID != "a-1" {
		t.Fatalf("RemoveNode = %v, %v", moved, err)
	}
	if u := c.NamespaceUsage("team"); u.Instances != 1 {
		t.Fatalf("namespace usage after removal %+v", u)
	}
	if err := c.SetNode(Node{ID: "n2", Capacity: small, Labels: map[string]string{"region": "x"}}); err != nil {
		t.Fatal(err)
	}
	p, err = c.Place(Request{Deployment: "a", Instances: []string{"a-1"}, Resources: r, Constraints: mustConstraints(t, "node.region=x")}, Options{})
	if err != nil || p.Placements[0].Node != "n2" {
		t.Fatalf("plan on reused slot %+v, %v", p, err)
	}
	if _, err := c.RemoveInstance("a-0"); err != nil {
		t.Fatal(err)
	}
	if used, n, _ := c.NodeUsage("n0"); !used.IsZero() || n != 0 {
		t.Fatalf("n0 usage %+v %d after removing its instance", used, n)
	}
	if nn, ni := c.Len(); nn != 2 || ni != 0 {
		t.Fatalf("Len = %d, %d", nn, ni)
	}
}

func TestConstraintCacheFollowsNodeChanges(t *testing.T) {
	c, err := NewCluster(nodes(3, small))
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Deployment: "w", Count: 1, Resources: Resources{CPUMilli: 100}, Constraints: mustConstraints(t, "node.region=x")}
	if _, err := c.Place(req, Options{}); !errors.Is(err, ErrUnsatisfiable) {
		t.Fatalf("no labelled node yet: %v", err)
	}
	n1, _ := c.Node("n1")
	n1.Labels = map[string]string{"region": "x"}
	if err := c.SetNode(n1); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Place(req, Options{}); err != nil || p.Placements[0].Node != "n1" {
		t.Fatalf("after labelling n1: %+v, %v", p, err)
	}
	if _, err := c.RemoveNode("n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNode(Node{ID: "n9", Capacity: small, Labels: map[string]string{"region": "x"}}); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Place(req, Options{}); err != nil || p.Placements[0].Node != "n9" {
		t.Fatalf("after replacing n1 by n9 in its slot: %+v, %v", p, err)
	}
	// Many distinct constraints stay bounded by the cache.
	for i := range maxConstraintCache + 10 {
		req.Constraints = mustConstraints(t, fmt.Sprintf("node.k%d!=v", i))
		if _, err := c.Place(req, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.masks) > maxConstraintCache {
		t.Fatalf("%d cached constraints; want at most %d", len(c.masks), maxConstraintCache)
	}
}
