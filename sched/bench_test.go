package sched

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// benchCluster builds 1,000 labelled nodes running 100,000 instances of 5,000 deployments.
func benchCluster(b *testing.B) (*Cluster, []string) {
	b.Helper()
	rng := rand.New(rand.NewPCG(42, 42))
	regions := []string{"us-east", "us-west", "eu", "ap"}
	types := []string{"general", "database", "cache"}
	c, err := NewCluster(nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		err := c.SetNode(Node{
			ID:       fmt.Sprintf("node-%04d", i),
			Labels:   map[string]string{"region": regions[i%4], "type": types[rng.IntN(3)]},
			Capacity: Resources{CPUMilli: 64000, RAMMB: 256 * 1024, DiskMB: 2 << 20},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	labels := make([]map[string]string, 100)
	for s := range labels {
		labels[s] = map[string]string{"service": fmt.Sprintf("s%d", s)}
	}
	ids := make([]string, 0, 100000)
	for k := range 100000 {
		d := k % 5000
		id := fmt.Sprintf("dep-%d-%d", d, k/5000)
		err := c.AddInstance(fmt.Sprintf("node-%04d", rng.IntN(1000)), Instance{
			ID: id, Deployment: fmt.Sprintf("dep-%d", d), Namespace: fmt.Sprintf("ns-%d", d%20),
			Labels: labels[d%100], Priority: 10 * rng.IntN(10),
			Resources: Resources{CPUMilli: int64(100 + rng.IntN(400)), RAMMB: int64(64 + rng.IntN(1024))},
		})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	return c, ids
}

// BenchmarkPlace measures placement decisions (one Place call for one instance of an
// existing deployment, or ten with count=10) against 1,000 nodes and 100,000 instances of
// 5,000 deployments, in steady state: each plan is applied and as many old instances
// removed. Only Place is timed for the reported metrics (decisions/s from the summed Place
// time, p50 and p99 of single Place calls); ns/op also includes Apply and the churn. "rules"
// adds two constraints, a soft affinity and a soft anti-affinity term.
func BenchmarkPlace(b *testing.B) {
	c, old := benchCluster(b)
	cons := mustConstraints(b, "node.region!=ap", "node.type in (general,database)")
	aff := mustTerms(b, "service=s7;weight=30")
	anti := mustTerms(b, "service=s3")
	serial := 0 // instance IDs stay unique across sub-benchmark runs
	for _, tc := range []struct {
		name  string
		strat Strategy
		rules bool
		count int
	}{
		{"spread", StrategySpread, false, 1},
		{"binpack", StrategyBinpack, false, 1},
		{"random", StrategyRandom, false, 1},
		{"spread,rules", StrategySpread, true, 1},
		{"binpack,rules", StrategyBinpack, true, 1},
		{"spread,count=10", StrategySpread, false, 10},
	} {
		b.Run(fmt.Sprintf("nodes=1000,instances=100000,%s", tc.name), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			durs := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d := rng.IntN(5000)
				req := Request{
					Deployment: fmt.Sprintf("dep-%d", d), Namespace: fmt.Sprintf("ns-%d", d%20),
					Labels: map[string]string{"service": fmt.Sprintf("s%d", d%100)}, Count: tc.count,
					Resources: Resources{CPUMilli: 250, RAMMB: 512}, Strategy: tc.strat, Priority: 50,
				}
				req.Instances = make([]string, tc.count)
				for k := range req.Instances {
					req.Instances[k] = fmt.Sprintf("b-%d", serial)
					serial++
				}
				if tc.rules {
					req.Constraints, req.Affinity, req.AntiAffinity = cons, aff, anti
				}
				start := time.Now()
				p, err := c.Place(req, Options{Rand: rng})
				durs = append(durs, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Apply(req, p); err != nil {
					b.Fatal(err)
				}
				// Steady state: retire the oldest instances, queue the new ones.
				for range tc.count {
					if _, err := c.RemoveInstance(old[0]); err != nil {
						b.Fatal(err)
					}
					old = old[1:]
				}
				for _, pl := range p.Placements {
					old = append(old, pl.Instance)
				}
			}
			b.StopTimer()
			reportLatency(b, durs, tc.count)
		})
	}
}

func reportLatency(b *testing.B, durs []time.Duration, perDecision int) {
	var total time.Duration
	for _, d := range durs {
		total += d
	}
	slices.Sort(durs)
	b.ReportMetric(float64(len(durs))/total.Seconds(), "decisions/s")
	if perDecision > 1 {
		b.ReportMetric(float64(len(durs)*perDecision)/total.Seconds(), "placements/s")
	}
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkPreempt measures the slow path: 1,000 full nodes of 100 low-priority instances
// each, and a high-priority request that must evict.
func BenchmarkPreempt(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	c, err := NewCluster(nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		id := fmt.Sprintf("node-%04d", i)
		if err := c.SetNode(Node{ID: id, Capacity: Resources{CPUMilli: 32000, RAMMB: 64000}}); err != nil {
			b.Fatal(err)
		}
		for k := range 100 {
			if err := c.AddInstance(id, Instance{ID: fmt.Sprintf("low-%d-%d", i, k), Deployment: fmt.Sprintf("low-%d", k),
				Priority: 10 * rng.IntN(5), Resources: Resources{CPUMilli: 320, RAMMB: 640}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("nodes=1000,instances=100000", func(b *testing.B) {
		durs := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			req := Request{Deployment: "urgent", Count: 1, Priority: 90, Resources: Resources{CPUMilli: 1000, RAMMB: 2000}}
			start := time.Now()
			p, err := c.Place(req, Options{})
			durs = append(durs, time.Since(start))
			if err != nil || len(p.Evictions) == 0 {
				b.Fatalf("%+v, %v", p, err)
			}
		}
		b.StopTimer()
		reportLatency(b, durs, 1)
	})
}

// BenchmarkOwner measures one ownership decision among 1,000 alive nodes.
func BenchmarkOwner(b *testing.B) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("12D3KooWnode%04d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_ = Owner("deployment-"+fmt.Sprint(i%5000), ids)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "owners/s")
}

// BenchmarkRendezvousOwner is BenchmarkOwner with the node hashes precomputed.
func BenchmarkRendezvousOwner(b *testing.B) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("12D3KooWnode%04d", i)
	}
	r := NewRendezvous(ids)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_ = r.Owner("deployment-" + fmt.Sprint(i%5000))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "owners/s")
}
