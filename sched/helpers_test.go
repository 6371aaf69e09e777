package sched

import (
	"fmt"
	"math/rand/v2"
)

// genCluster returns nNodes labelled nodes with nInst instances of 50 deployments.
func genCluster(rng *rand.Rand, nNodes, nInst int) []Node {
	regions := []string{"us-east", "us-west", "eu", "ap"}
	types := []string{"general", "database", "cache"}
	ns := make([]Node, nNodes)
	for i := range ns {
		ns[i] = Node{
			ID:       fmt.Sprintf("node-%04d", i),
			Labels:   map[string]string{"region": regions[rng.IntN(len(regions))], "type": types[rng.IntN(len(types))]},
			Capacity: Resources{CPUMilli: 64000, RAMMB: 256 * 1024, DiskMB: 2 << 20},
		}
	}
	for k := range nInst {
		d := rng.IntN(50)
		n := &ns[rng.IntN(len(ns))]
		n.Instances = append(n.Instances, Instance{
			ID:         fmt.Sprintf("dep-%d-x%d", d, k),
			Deployment: fmt.Sprintf("dep-%d", d),
			Namespace:  fmt.Sprintf("ns-%d", d%5),
			Labels:     map[string]string{"service": fmt.Sprintf("s%d", d%10)},
			Priority:   10 * rng.IntN(10),
			Resources:  Resources{CPUMilli: int64(100 + rng.IntN(400)), RAMMB: int64(64 + rng.IntN(1024))},
		})
	}
	return ns
}
