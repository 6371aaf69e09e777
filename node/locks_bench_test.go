package node

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// lockCluster starts three nodes over loopback (real hosts, bbolt stores that fsync each
// entry) and waits for a lock leader with three voters.
func lockCluster(b *testing.B) (leader *testNode, followers []*testNode) {
	ns := startCluster(b, 3, func(i int, c *Config) { c.Locks.StableAfter = 300 * time.Millisecond })
	testutil.WaitFor(b, 60*time.Second, "a lock leader with 3 voters", func() (bool, string) {
		leader, followers = nil, nil
		for _, n := range ns {
			st := n.Locks().Status()
			if st.State == "leader" && len(st.Voters) == 3 {
				leader = n
			} else {
				followers = append(followers, n)
			}
		}
		return leader != nil, fmt.Sprint(ns[0].Locks().Status())
	})
	// The first acquire through each node warms its streams.
	for _, n := range ns {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		l, err := n.Locks().Acquire(ctx, "/warm", "w", time.Second, true)
		if err == nil {
			err = n.Locks().Release(ctx, "/warm", l.Token)
		}
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	return leader, followers
}

func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkLockAcquire: uncontended acquire (then an untimed release) on the leader and
// through a follower (one forward over a libp2p stream); each grant is a Raft entry
// committed by a majority, fsynced by bbolt.
func BenchmarkLockAcquire(b *testing.B) {
	leader, followers := lockCluster(b)
	for _, tc := range []struct {
		name string
		n    *testNode
	}{{"leader", leader}, {"follower", followers[0]}} {
		b.Run(tc.name, func(b *testing.B) {
			s := tc.n.Locks()
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				path := fmt.Sprintf("/bench/%s/%d", tc.name, i)
				start := time.Now()
				l, err := s.Acquire(ctx, path, "bench", 10*time.Second, false)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				b.StopTimer()
				if err := s.Release(ctx, path, l.Token); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

// BenchmarkLockContention: 10 clients on the three nodes take turns on one lock (acquire
// waiting, release at once); acquire latency (waits included) and grants per second.
func BenchmarkLockContention(b *testing.B) {
	leader, followers := lockCluster(b)
	nodes := append([]*testNode{leader}, followers...)
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + 9) / 10
	for c := 0; c < 10; c++ {
		s := nodes[c%len(nodes)].Locks()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				l, err := s.Acquire(ctx, "/bench/contended", fmt.Sprintf("c%d-%d", c, i), 10*time.Second, true)
				d := time.Since(t0)
				if err == nil {
					err = s.Release(ctx, "/bench/contended", l.Token)
				}
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "grants/s")
	reportLatency(b, lat)
}

// BenchmarkLockFailover: the lock leader's node is killed; time until a surviving node is
// granted a lock (election, the new leader's takeover entry, one grant).
func BenchmarkLockFailover(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		leader, followers := lockCluster(b)
		b.StartTimer()
		start := time.Now()
		leader.Kill()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := followers[0].Locks().Acquire(ctx, fmt.Sprintf("/failover/%d", i), "f", time.Second, false)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
}
