package liveness

import (
	"fmt"
	"testing"
	"time"
)

// With agreed clocks and views the slotted schedule is a rotation: in every
// slot each member probes someone else and is probed exactly once, and over
// n-1 slots each member probes every other member.
func TestSlotScheduleIsRotation(t *testing.T) {
	for _, n := range []int{2, 3, 5, 20} {
		t.Run(fmt.Sprint("N=", n), func(t *testing.T) {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = simID((i * 7) % n) // not in sorted order
			}
			dets := make([]*Detector, n)
			for i, id := range ids {
				d, err := New(id, 1, DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range ids {
					if o != id {
						d.AddMember(o, simEpoch)
					}
				}
				dets[i] = d
			}
			probed := map[string]map[string]bool{}
			for slot := 0; slot < n-1; slot++ {
				now := simEpoch.Add(time.Duration(slot) * DefaultConfig().ProbeInterval)
				seen := map[string]string{}
				for _, d := range dets {
					target := d.slotTarget(now)
					if target == d.Self() || target == "" {
						t.Fatalf("slot %d: %s probes %q", slot, d.Self(), target)
					}
					if other, dup := seen[target]; dup {
						t.Fatalf("slot %d: %s probed by %s and %s", slot, target, other, d.Self())
					}
					seen[target] = d.Self()
					if probed[d.Self()] == nil {
						probed[d.Self()] = map[string]bool{}
					}
					probed[d.Self()][target] = true
				}
			}
			for _, d := range dets {
				if got := len(probed[d.Self()]); got != n-1 {
					t.Errorf("%s probed %d distinct members in n-1 slots, want %d", d.Self(), got, n-1)
				}
			}
		})
	}
}

// SWIM's original shuffled schedule still detects within bounds.
func TestShuffledProbesDetect(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ShuffledProbes = true
	for seed := uint64(1); seed <= 5; seed++ {
		if d, ok := detectOnce(t, 8, seed, cfg, 5*time.Second, 10*time.Second); !ok {
			t.Fatalf("seed %d: not dead everywhere after %v", seed, d)
		}
	}
}

// Clocks spread over ±1 interval: the rotation is no longer exact but every
// member still gets probed and detection stays within bounds.
func TestSkewedClocksDetect(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		s := newSim(t, 10, seed, DefaultConfig())
		for _, nd := range s.nodes {
			nd.skew = time.Duration(s.rng.Int64N(int64(time.Second))) - 500*time.Millisecond
		}
		s.run(5 * time.Second)
		victim := s.node(int(seed))
		at := s.now
		s.kill(victim)
		if !s.runUntil(at.Add(10*time.Second), func() bool { return s.allSee(victim, StateDead) }) {
			t.Fatalf("seed %d: not dead everywhere 10s after the kill", seed)
		}
		if n := s.countEvents(EventDead, func(_, sub string) bool { return sub != victim.id }); n > 0 {
			t.Fatalf("seed %d: %d healthy nodes declared dead", seed, n)
		}
	}
}

// Timers that fire late must not skip slots: an idle node sends one ping
// and one ack per ProbeInterval (4 packets/s with the defaults).
func TestProbeRateWithLateTimers(t *testing.T) {
	for _, lag := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
		s := newSim(t, 6, 5, DefaultConfig())
		s.lag = lag
		s.run(5 * time.Second)
		var before int64
		for _, nd := range s.nodes {
			before += nd.pkts
		}
		s.run(60 * time.Second)
		var after int64
		for _, nd := range s.nodes {
			after += nd.pkts
		}
		perNode := float64(after-before) / 6 / 60
		if perNode < 3.9 || perNode > 4.1 {
			t.Errorf("lag %v: %.2f packets/s/node, want 4 (one ping, one ack per 500ms)", lag, perNode)
		}
	}
}
