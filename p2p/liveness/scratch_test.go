package liveness

import (
	"slices"
	"testing"
	"time"
)

func TestScratchBreakdown(t *testing.T) {
	for _, n := range []int{5, 20} {
		var fs, fd, ad []float64
		for seed := uint64(1); seed <= 100; seed++ {
			s := newSim(t, n, seed, DefaultConfig())
			s.run(5*time.Second + time.Duration(s.rng.Int64N(int64(time.Second))))
			victim := s.node(s.rng.IntN(n))
			k := s.now
			s.kill(victim)
			s.runUntil(k.Add(30*time.Second), func() bool { return s.allSee(victim, StateDead) })
			first := func(kind EventKind) float64 {
				best := 1e9
				for _, nd := range s.nodes {
					if at, ok := firstEvent(nd, victim.id, kind, k); ok {
						best = min(best, at.Sub(k).Seconds())
					}
				}
				return best
			}
			fs = append(fs, first(EventSuspect))
			fd = append(fd, first(EventDead))
			ad = append(ad, s.now.Sub(k).Seconds())
		}
		slices.Sort(fs)
		slices.Sort(fd)
		slices.Sort(ad)
		t.Logf("n=%d firstSuspect p50=%.2f p99=%.2f | firstDead p50=%.2f p99=%.2f | allDead p50=%.2f p99=%.2f", n, fs[50], fs[98], fd[50], fd[98], ad[50], ad[98])
	}
}
