package sched

import (
	"fmt"
	"slices"
	"testing"
)

// TestScenarioNodeLossAndHeal drives the Cluster the way the node wiring will: deploy, lose
// a node, re-place its instances, then resolve duplicates made by both sides of a partition.
func TestScenarioNodeLossAndHeal(t *testing.T) {
	ns := nodes(5, small)
	for i := range ns {
		ns[i].Labels = map[string]string{"region": []string{"a", "b"}[i%2]}
	}
	c, err := NewCluster(ns)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Deployment: "web", Count: 10, Resources: Resources{CPUMilli: 500, RAMMB: 256}}
	plan, err := c.Place(req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(req, plan); err != nil {
		t.Fatal(err)
	}
	countOn := func() map[string]int {
		m := map[string]int{}
		for i := range 10 {
			if _, n, ok := c.Instance(InstanceID("web", i)); ok {
				m[n]++
			}
		}
		return m
	}
	if m := countOn(); len(m) != 5 || m["n0"] != 2 {
		t.Fatalf("initial spread %v; want 2 per node", m)
	}

	// n2 dies: its instances come back elsewhere, still spread.
	lost, err := c.RemoveNode("n2")
	if err != nil || len(lost) != 2 {
		t.Fatalf("RemoveNode: %v, %v", lost, err)
	}
	alive := c.NodeIDs()
	if owner := Owner("web", alive); !slices.Contains(alive, owner) {
		t.Fatalf("owner %s not alive", owner)
	}
	re := req
	re.Count, re.Instances = 0, []string{lost[0].ID, lost[1].ID}
	plan, err = c.Place(re, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(re, plan); err != nil {
		t.Fatal(err)
	}
	m := countOn()
	if m["n2"] != 0 || len(m) != 4 {
		t.Fatalf("after losing n2: %v", m)
	}
	for n, k := range m {
		if k < 2 || k > 3 {
			t.Fatalf("after losing n2, %s runs %d; want 2 or 3 (%v)", n, k, m)
		}
	}

	// Partition: each side believes web-3 is gone and places it on its own side.
	_, home, _ := c.Instance("web-3")
	sideA := []string{"n0", "n1"}
	var running []Running
	for i := range 10 {
		id := InstanceID("web", i)
		_, n, _ := c.Instance(id)
		running = append(running, Running{ID: id, Index: i, Node: n, Created: Stamp{Wall: 1}, Ready: true})
	}
	for k, side := range [][]string{sideA, {"n3", "n4"}} {
		cons := mustConstraints(t, fmt.Sprintf("node.name in (%s,%s)", side[0], side[1]))
		p, err := c.Place(Request{Deployment: "web", Instances: []string{"web-3"}, Resources: req.Resources, Constraints: cons}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, Running{ID: "web-3", Index: 3, Node: p.Placements[0].Node, Created: Stamp{Wall: int64(10 + k)}, Ready: true})
	}
	r := Reconcile("web", 10, running)
	if len(r.Keep) != 10 || len(r.Stop) != 2 || len(r.Missing) != 0 {
		t.Fatalf("reconcile keep %d stop %d missing %v; want 10, 2, none", len(r.Keep), len(r.Stop), r.Missing)
	}
	if r.Keep[3].Node != home {
		t.Fatalf("kept web-3 on %s; want the original on %s", r.Keep[3].Node, home)
	}
}
