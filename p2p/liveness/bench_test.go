package liveness

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

// BenchmarkDetection measures, on the simulated LAN with default settings,
// the time from killing a random node until every other node marks it dead.
// Each iteration runs 100 independent trials (different seeds).
func BenchmarkDetection(b *testing.B) {
	shuffled := DefaultConfig()
	shuffled.ShuffledProbes = true
	wan, _ := Profile(ProfileWAN)
	local, _ := Profile(ProfileLocal)
	cases := []struct {
		name string
		n    int
		slow time.Duration // every node processes inbound packets up to this late
		skew time.Duration // clocks are spread uniformly over ±skew
		cfg  Config
	}{
		{"N=5", 5, 0, 0, DefaultConfig()},
		{"N=20", 20, 0, 0, DefaultConfig()},
		{"N=5,saturated=100ms", 5, 100 * time.Millisecond, 0, DefaultConfig()},
		{"N=20,saturated=100ms", 20, 100 * time.Millisecond, 0, DefaultConfig()},
		{"N=20,skew=250ms", 20, 0, 250 * time.Millisecond, DefaultConfig()},
		{"N=5,shuffled", 5, 0, 0, shuffled},
		{"N=20,shuffled", 20, 0, 0, shuffled},
		{"wan,N=5", 5, 0, 0, wan},
		{"wan,N=20", 20, 0, 0, wan},
		{"local,N=5", 5, 0, 0, local},
		{"local,N=20", 20, 0, 0, local},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var ds []float64
			missed := 0
			seed := uint64(0)
			for i := 0; i < b.N; i++ {
				for trial := 0; trial < 100; trial++ {
					seed++
					s := newSim(b, c.n, seed, c.cfg)
					for _, nd := range s.nodes {
						nd.slow = c.slow
						if c.skew > 0 {
							nd.skew = time.Duration(s.rng.Int64N(int64(2*c.skew))) - c.skew
						}
					}
					warmup := max(5*time.Second, 10*c.cfg.ProbeInterval)
					s.run(warmup + time.Duration(s.rng.Int64N(int64(2*c.cfg.ProbeInterval))))
					victim := s.node(s.rng.IntN(c.n))
					killedAt := s.now
					s.kill(victim)
					if !s.runUntil(killedAt.Add(2*time.Minute), func() bool { return s.allSee(victim, StateDead) }) {
						missed++
					}
					ds = append(ds, s.now.Sub(killedAt).Seconds())
				}
			}
			slices.Sort(ds)
			b.ReportMetric(percentile(ds, 0.5), "p50_s")
			b.ReportMetric(percentile(ds, 0.99), "p99_s")
			b.ReportMetric(ds[len(ds)-1], "max_s")
			b.ReportMetric(float64(missed), "missed")
		})
	}
}

// BenchmarkIdleTraffic measures steady-state payload per node (bytes sent
// plus received, averaged) with idle members, after a 10 s warm-up, for each
// profile.
func BenchmarkIdleTraffic(b *testing.B) {
	for _, prof := range Profiles() {
		cfg, err := Profile(prof)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{5, 20} {
			b.Run(fmt.Sprintf("%s,N=%d", prof, n), func(b *testing.B) { idleTraffic(b, n, cfg) })
		}
	}
}

func idleTraffic(b *testing.B, n int, cfg Config) {
	const window = 60 * time.Second
	var sent, recv, pkts float64
	for i := 0; i < b.N; i++ {
		s := newSim(b, n, uint64(i+1), cfg)
		s.run(10 * time.Second)
		var s0, r0, p0 int64
		for _, nd := range s.nodes {
			s0 += nd.sent
			r0 += nd.recv
			p0 += nd.pkts
		}
		s.run(window)
		var s1, r1, p1 int64
		for _, nd := range s.nodes {
			s1 += nd.sent
			r1 += nd.recv
			p1 += nd.pkts
		}
		perNode := float64(n) * window.Seconds()
		sent += float64(s1-s0) / perNode
		recv += float64(r1-r0) / perNode
		pkts += float64(p1-p0) / perNode
	}
	b.ReportMetric(sent/float64(b.N), "sent_B/s/node")
	b.ReportMetric(recv/float64(b.N), "recv_B/s/node")
	b.ReportMetric(pkts/float64(b.N), "sent_pkts/s/node")
}

// BenchmarkFalsePositives counts dead and suspect events in a healthy
// 10-node cluster over 10 simulated minutes with packet loss.
func BenchmarkFalsePositives(b *testing.B) {
	for _, loss := range []float64{0.10, 0.20} {
		b.Run(fmt.Sprintf("N=10,loss=%.0f%%", loss*100), func(b *testing.B) {
			var dead, suspect int
			for i := 0; i < b.N; i++ {
				s := newSim(b, 10, uint64(i+1), DefaultConfig())
				s.loss = loss
				s.run(10 * time.Minute)
				all := func(string, string) bool { return true }
				dead += s.countEvents(EventDead, all)
				suspect += s.countEvents(EventSuspect, all)
			}
			b.ReportMetric(float64(dead)/float64(b.N), "false_dead/10min")
			b.ReportMetric(float64(suspect)/float64(b.N), "suspicions/10min")
		})
	}
}
