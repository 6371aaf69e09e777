package liveness

import (
	"sort"
	"testing"
	"time"
)

func scratchCfg() Config {
	c := DefaultConfig()
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 4
	return c
}

func TestScratchDetect(t *testing.T) {
	for _, n := range []int{3, 5, 20} {
		var ds []float64
		fails := 0
		for seed := uint64(1); seed <= 40; seed++ {
			d, ok := detectOnce(t, n, seed, scratchCfg(), 5*time.Second, 20*time.Second)
			if !ok {
				fails++
			}
			ds = append(ds, d.Seconds())
		}
		sort.Float64s(ds)
		t.Logf("n=%d p50=%.2f p90=%.2f max=%.2f fails=%d", n, ds[len(ds)/2], ds[len(ds)*9/10], ds[len(ds)-1], fails)
	}
}

func TestScratchFP(t *testing.T) {
	for _, loss := range []float64{0.1, 0.2} {
		s := newSim(t, 10, 7, scratchCfg())
		s.loss = loss
		s.run(10 * time.Minute)
		all := func(o, sub string) bool { return true }
		t.Logf("loss=%.1f suspect=%d dead=%d refuted=%d", loss, s.countEvents(EventSuspect, all), s.countEvents(EventDead, all), s.countEvents(EventRefuted, all))
	}
	for _, slow := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		for _, lg := range []bool{true, false} {
			cfg := scratchCfg()
			if !lg {
				cfg.AwarenessMaxMultiplier = 1
				cfg.SuspicionMaxTimeoutMult = 1
			}
			s := newSim(t, 8, 7, cfg)
			s.node(0).slow = slow
			s.run(5 * time.Minute)
			healthy := func(o, sub string) bool { return sub != s.node(0).id }
			t.Logf("slow=%v lifeguard=%v suspect(healthy)=%d dead(healthy)=%d dead(slow)=%d health=%d", slow, lg, s.countEvents(EventSuspect, healthy), s.countEvents(EventDead, healthy),
				s.countEvents(EventDead, func(o, sub string) bool { return sub == s.node(0).id }), s.node(0).det.LocalHealth())
		}
	}
}

func TestScratchAllSlow(t *testing.T) {
	for _, slow := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond} {
		for _, mult := range [][2]int{{3, 4}, {4, 3}} {
			cfg := DefaultConfig()
			cfg.SuspicionMult, cfg.SuspicionMaxTimeoutMult = mult[0], mult[1]
			s := newSim(t, 10, 7, cfg)
			for _, nd := range s.nodes {
				nd.slow = slow
			}
			s.run(5 * time.Minute)
			all := func(o, sub string) bool { return true }
			h := 0
			for _, nd := range s.nodes {
				h += nd.det.LocalHealth()
			}
			t.Logf("allslow=%v mult=%v suspect=%d dead=%d health=%d", slow, mult, s.countEvents(EventSuspect, all), s.countEvents(EventDead, all), h)
		}
	}
}
