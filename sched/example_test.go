package sched_test

import (
	"errors"
	"fmt"

	"github.com/rads-lang/constellation/sched"
)

func ExampleCluster_Place() {
	c, _ := sched.NewCluster([]sched.Node{
		{ID: "n1", Labels: map[string]string{"region": "us-east"}, Capacity: sched.Resources{CPUMilli: 4000, RAMMB: 8192}},
		{ID: "n2", Labels: map[string]string{"region": "us-east"}, Capacity: sched.Resources{CPUMilli: 4000, RAMMB: 8192}},
		{ID: "n3", Labels: map[string]string{"region": "eu"}, Capacity: sched.Resources{CPUMilli: 4000, RAMMB: 8192}},
	})
	cons, _ := sched.ParseConstraints([]string{"node.region=us-east"})
	req := sched.Request{
		Deployment: "web", Count: 4, Strategy: sched.StrategySpread, Constraints: cons,
		Resources: sched.Resources{CPUMilli: sched.CPUPercent(50), RAMMB: 512},
	}
	plan, err := c.Place(req, sched.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	perNode := map[string]int{}
	for _, p := range plan.Placements {
		perNode[p.Node]++
	}
	fmt.Println(perNode)
	_ = c.Apply(req, plan)

	// Asking for more than any node has explains why.
	req = sched.Request{Deployment: "db", Count: 1, Resources: sched.Resources{RAMMB: 16384}}
	_, err = c.Place(req, sched.Options{})
	fmt.Println(errors.Is(err, sched.ErrInsufficient), err)
	// Output:
	// map[n1:2 n2:2]
	// true sched: cannot place db-0: insufficient ram_mb: asked 16384, largest free 8192 on n3 (3 nodes short)
}

func ExampleOwner() {
	alive := []string{"n1", "n2", "n3"}
	owner := sched.Owner("web", alive)
	next := sched.Rank("web", alive)[1]
	// When the owner dies, the next rendezvous winner takes over.
	var rest []string
	for _, n := range alive {
		if n != owner {
			rest = append(rest, n)
		}
	}
	fmt.Println(sched.Owner("web", rest) == next)
	// Output: true
}

func ExampleReconcile() {
	// After a heal both sides run web-0; the older one is kept.
	r := sched.Reconcile("web", 2, []sched.Running{
		{ID: "web-0", Index: 0, Node: "n1", Created: sched.Stamp{Wall: 100}, Ready: true},
		{ID: "web-0", Index: 0, Node: "n4", Created: sched.Stamp{Wall: 250}, Ready: true},
		{ID: "web-1", Index: 1, Node: "n2", Created: sched.Stamp{Wall: 100}, Ready: true},
	})
	for _, s := range r.Stop {
		fmt.Println("stop", s.ID, "on", s.Node)
	}
	fmt.Println("missing", r.Missing)
	// Output:
	// stop web-0 on n4
	// missing []
}
