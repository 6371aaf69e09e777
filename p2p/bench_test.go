package p2p

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// benchCluster starts n hosts; host i joins up to `fanout` random earlier hosts.
func benchCluster(b *testing.B, n, fanout int, mod func(*Config)) ([]*Host, []*mapReplica) {
	b.Helper()
	var hs []*Host
	var rs []*mapReplica
	for i := 0; i < n; i++ {
		cfg := fastConfig(b)
		// Production periods (the test config's 1s DHT lookups cost real CPU at N=50).
		d := Config{}.withDefaults()
		cfg.AntiEntropyInterval, cfg.DiscoveryInterval = d.AntiEntropyInterval, d.DiscoveryInterval
		if mod != nil {
			mod(&cfg)
		}
		for _, j := range rand.Perm(i)[:min(i, fanout)] {
			cfg.Join = append(cfg.Join, joinOf(b, hs[j], true))
		}
		r := newMapReplica()
		hs = append(hs, startHost(b, cfg, r))
		rs = append(rs, r)
	}
	return hs, rs
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkPropagation measures the time from Publish on one host until every other
// host has applied the delta (gossip path, default GossipBatch of 5ms).
func BenchmarkPropagation(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			hs, rs := benchCluster(b, n, 3, nil)
			// Wait for each host to have gossip topic peers and the state to have everyone.
			for i, h := range hs {
				h.Publish(rs[i].Set(fmt.Sprintf("init-%d", i), "v"))
			}
			testutil.WaitFor(b, 60*time.Second, "initial convergence", func() (bool, string) {
				for i, r := range rs {
					if r.Len() < n {
						return false, fmt.Sprintf("replica %d holds %d keys, want at least %d", i, r.Len(), n)
					}
				}
				return true, ""
			})
			// Measure the steady state: after the DHT has completed the full mesh and
			// the connection storm (all hosts share this machine's 2 cores) is over.
			testutil.WaitFor(b, 120*time.Second, "full mesh", func() (bool, string) { return admittedAll(hs) })
			time.Sleep(3 * time.Second)
			var mu sync.Mutex
			var pending map[int]bool
			done := make(chan struct{}, 1)
			var want string
			for i, r := range rs {
				r.mu.Lock()
				r.onApply = func() {
					mu.Lock()
					defer mu.Unlock()
					if pending == nil || !pending[i] {
						return
					}
					if _, ok := r.Get(want); ok {
						delete(pending, i)
						if len(pending) == 0 {
							pending = nil
							done <- struct{}{}
						}
					}
				}
				r.mu.Unlock()
			}
			var lat []time.Duration
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				src := it % n
				mu.Lock()
				want = fmt.Sprintf("k-%d", it)
				pending = map[int]bool{}
				for i := range hs {
					if i != src {
						pending[i] = true
					}
				}
				mu.Unlock()
				start := time.Now()
				hs[src].Publish(rs[src].Set(want, "v"))
				select {
				case <-done:
					lat = append(lat, time.Since(start))
				case <-time.After(20 * time.Second):
					b.Fatalf("publish %d not everywhere after 20s", it)
				}
			}
			b.StopTimer()
			b.ReportMetric(ms(percentile(lat, 0.5)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
		})
	}
}

// BenchmarkJoinConvergence measures the time from starting N fresh hosts (each joining
// one or two earlier ones) until every host holds every host's record.
func BenchmarkJoinConvergence(b *testing.B) {
	for _, n := range []int{5, 20} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var total time.Duration
			for it := 0; it < b.N; it++ {
				start := time.Now()
				hs, rs := benchCluster(b, n, 2, nil)
				for i, h := range hs {
					h.Publish(rs[i].Set(fmt.Sprintf("member-%d", i), "v"))
				}
				testutil.WaitFor(b, 60*time.Second, "membership convergence", func() (bool, string) {
					for i, r := range rs {
						if r.Len() < n {
							return false, fmt.Sprintf("replica %d holds %d keys, want at least %d", i, r.Len(), n)
						}
					}
					return true, ""
				})
				total += time.Since(start)
				b.StopTimer()
				for _, h := range hs {
					h.Close()
				}
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/converge")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkBootstrapSync measures how long a new host takes to receive a 100,000-entry
// state from a member (one anti-entropy exchange right after admission).
func BenchmarkBootstrapSync(b *testing.B) {
	const entries = 100_000
	seedR := newMapReplica()
	for i := 0; i < entries; i++ {
		seedR.Set(fmt.Sprintf("key-%06d", i), "value-0123456789")
	}
	seed := startHost(b, fastConfig(b), seedR)
	var total time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		r := newMapReplica()
		cfg := fastConfig(b)
		cfg.Join = []JoinAddr{joinOf(b, seed, true)}
		start := time.Now()
		h := startHost(b, cfg, r)
		testutil.WaitFor(b, 60*time.Second, "bootstrap", func() (bool, string) { return r.Len() == entries, "" })
		total += time.Since(start)
		b.StopTimer()
		h.Close()
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/bootstrap")
	b.ReportMetric(float64(len(seedR.Version())), "version-bytes")
}

// BenchmarkIdleBytes measures steady-state traffic per host in an idle 20-host cluster
// with default anti-entropy (5s) and a small state: libp2p, gossipsub, DHT and
// anti-entropy together, excluding failure detection (p2p/liveness).
func BenchmarkIdleBytes(b *testing.B) {
	const n = 20
	hs, rs := benchCluster(b, n, 2, func(c *Config) {
		// Production defaults for everything periodic.
		d := Config{}.withDefaults()
		c.AntiEntropyInterval, c.DiscoveryInterval = d.AntiEntropyInterval, d.DiscoveryInterval
	})
	_ = hs
	for i, h := range hs {
		h.Publish(rs[i].Set(fmt.Sprintf("member-%d", i), "v"))
	}
	testutil.WaitFor(b, 60*time.Second, "convergence", func() (bool, string) {
		for i, r := range rs {
			if r.Len() < n {
				return false, fmt.Sprintf("replica %d holds %d keys, want at least %d", i, r.Len(), n)
			}
		}
		return true, ""
	})
	// Steady state: the DHT has completed the full mesh and the connection storm is over.
	testutil.WaitFor(b, 120*time.Second, "full mesh", func() (bool, string) { return admittedAll(hs) })
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		time.Sleep(5 * time.Second) // let identify, DHT refresh and bootstrap syncs settle
		var in0, out0 int64
		for _, h := range hs {
			i, o := h.Bandwidth()
			in0, out0 = in0+i, out0+o
		}
		const window = 10 * time.Second
		time.Sleep(window)
		var in1, out1 int64
		for _, h := range hs {
			i, o := h.Bandwidth()
			in1, out1 = in1+i, out1+o
		}
		b.ReportMetric(float64(out1-out0)/window.Seconds()/n, "B/s-sent/node")
		b.ReportMetric(float64(in1-in0)/window.Seconds()/n, "B/s-recv/node")
	}
}

// BenchmarkSyncIdle measures one anti-entropy exchange between two hosts with equal
// state (the steady-state cost: a digest compare on a fresh stream).
func BenchmarkSyncIdle(b *testing.B) {
	ra, rb := newMapReplica(), newMapReplica()
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("member-%d", i)
		ra.Set(k, "v")
		rb.Set(k, "v")
	}
	a := startHost(b, fastConfig(b), ra)
	cfg := fastConfig(b)
	cfg.AntiEntropyInterval = 0
	cfg.Join = []JoinAddr{joinOf(b, a, true)}
	bh := startHost(b, cfg, rb)
	testutil.WaitFor(b, 10*time.Second, "admission", func() (bool, string) { return admittedAll([]*Host{a, bh}) })
	time.Sleep(500 * time.Millisecond)
	ctx := context.Background()
	time.Sleep(1500 * time.Millisecond) // bandwidth totals are swept once a second
	_, out0 := bh.Bandwidth()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		if err := bh.SyncWith(ctx, a.ID()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	time.Sleep(1500 * time.Millisecond)
	_, out1 := bh.Bandwidth()
	b.ReportMetric(float64(out1-out0)/float64(b.N), "B-sent/sync")
}

// BenchmarkMemoryPerHost reports Go heap in use per host in a settled 20-host cluster
// (in-process hosts share the runtime, so this is the host's own share, not an RSS).
func BenchmarkMemoryPerHost(b *testing.B) {
	const n = 20
	for it := 0; it < b.N; it++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		hs, rs := benchCluster(b, n, 2, nil)
		for i, h := range hs {
			h.Publish(rs[i].Set(fmt.Sprintf("member-%d", i), "v"))
		}
		testutil.WaitFor(b, 120*time.Second, "full mesh", func() (bool, string) { return admittedAll(hs) })
		time.Sleep(2 * time.Second)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapInuse-m0.HeapInuse)/n/(1<<20), "heap-MB/host")
		b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/host")
		b.StopTimer()
		for _, h := range hs {
			h.Close()
		}
		b.StartTimer()
	}
}
