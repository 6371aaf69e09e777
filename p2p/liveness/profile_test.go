package liveness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

func mustProfile(t testing.TB, name string) Config {
	t.Helper()
	c, err := Profile(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProfiles(t *testing.T) {
	for _, name := range Profiles() {
		c, err := Profile(name)
		if err != nil {
			t.Fatalf("Profile(%q) = %v", name, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Profile(%q) does not validate: %v", name, err)
		}
		if _, err := New("self", 1, c); err != nil {
			t.Errorf("New with profile %q: %v", name, err)
		}
	}
	if lan := mustProfile(t, ProfileLAN); lan != DefaultConfig() {
		t.Errorf("lan = %+v; want DefaultConfig %+v", lan, DefaultConfig())
	}
	lan, wan, local := mustProfile(t, ProfileLAN), mustProfile(t, ProfileWAN), mustProfile(t, ProfileLocal)
	if wan.ProbeInterval <= lan.ProbeInterval || wan.ProbeTimeout <= lan.ProbeTimeout || wan.SuspicionMult <= lan.SuspicionMult {
		t.Errorf("wan (%v/%v x%d) does not wait longer than lan (%v/%v x%d)",
			wan.ProbeInterval, wan.ProbeTimeout, wan.SuspicionMult, lan.ProbeInterval, lan.ProbeTimeout, lan.SuspicionMult)
	}
	if local.ProbeInterval >= lan.ProbeInterval || local.ProbeTimeout >= lan.ProbeTimeout {
		t.Errorf("local (%v/%v) is not faster than lan (%v/%v)", local.ProbeInterval, local.ProbeTimeout, lan.ProbeInterval, lan.ProbeTimeout)
	}
	for _, bad := range []string{"", "LAN", "wan ", "edge"} {
		_, err := Profile(bad)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Profile(%q) = %v; want ErrInvalidConfig", bad, err)
			continue
		}
		for _, name := range Profiles() {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("Profile(%q) error %q does not name the accepted %q", bad, err, name)
			}
		}
	}
}

// Each profile detects a killed node within the time its documentation
// promises for a healthy cluster (deterministic simulation, LAN network):
// lan 2.3 to 2.9 s, wan about 14 to 18 s, local 1.1 to 1.5 s. The bounds
// below leave some room above those figures and fail if a profile drifts.
func TestProfilesDetectWithinBound(t *testing.T) {
	bounds := map[string]time.Duration{ProfileLAN: 4 * time.Second, ProfileWAN: 20 * time.Second, ProfileLocal: 2 * time.Second}
	for _, name := range Profiles() {
		cfg := mustProfile(t, name)
		for _, n := range []int{5, 20} {
			t.Run(fmt.Sprintf("%s/N=%d", name, n), func(t *testing.T) {
				var worst time.Duration
				for seed := uint64(1); seed <= 5; seed++ {
					s := newSim(t, n, seed, cfg)
					s.run(10*cfg.ProbeInterval + time.Duration(seed)*cfg.ProbeInterval/5)
					victim := s.node(int(seed) % n)
					killedAt := s.now
					s.kill(victim)
					if !s.runUntil(killedAt.Add(bounds[name]), func() bool { return s.allSee(victim, StateDead) }) {
						t.Fatalf("seed %d: the killed node is not dead everywhere %v after the kill", seed, bounds[name])
					}
					worst = max(worst, s.now.Sub(killedAt))
					if d := s.countEvents(EventDead, func(_, sub string) bool { return sub != victim.id }); d > 0 {
						t.Errorf("seed %d: %d dead events about healthy nodes", seed, d)
					}
				}
				t.Logf("slowest detection %v (bound %v)", worst, bounds[name])
			})
		}
	}
}

// slowLinkSuspicions runs a healthy 10-node cluster for 5 simulated minutes
// on a network whose one-way delay is 400 to 700 ms (round trips of 0.8 to
// 1.4 s: beyond the LAN profile's whole probe interval, partly beyond the WAN
// probe timeout) and counts suspect and dead events.
func slowLinkSuspicions(t *testing.T, cfg Config) (suspect, dead int) {
	s := newSim(t, 10, 21, cfg)
	s.latency = 400 * time.Millisecond
	s.jitter = 300 * time.Millisecond
	s.run(5 * time.Minute)
	all := func(string, string) bool { return true }
	return s.countEvents(EventSuspect, all), s.countEvents(EventDead, all)
}

func TestWANProfileToleratesSlowLinks(t *testing.T) {
	if suspect, dead := slowLinkSuspicions(t, mustProfile(t, ProfileWAN)); suspect+dead > 0 {
		t.Errorf("wan: %d suspect and %d dead events in a healthy cluster behind slow links; want none", suspect, dead)
	}
	// The same links make the LAN profile suspect healthy nodes: the scenario
	// is one the WAN profile is needed for.
	if suspect, dead := slowLinkSuspicions(t, mustProfile(t, ProfileLAN)); suspect == 0 {
		t.Errorf("lan: no suspicion behind slow links (dead %d): the delay is too small to show anything", dead)
	} else {
		t.Logf("lan behind the same links: %d suspect, %d dead events", suspect, dead)
	}

	// Behind those links the WAN profile still detects a killed node.
	cfg := mustProfile(t, ProfileWAN)
	s := newSim(t, 10, 22, cfg)
	s.latency = 400 * time.Millisecond
	s.jitter = 300 * time.Millisecond
	s.run(30 * time.Second)
	victim := s.node(3)
	killedAt := s.now
	s.kill(victim)
	if !s.runUntil(killedAt.Add(30*time.Second), func() bool { return s.allSee(victim, StateDead) }) {
		t.Fatalf("wan behind slow links: killed node not dead everywhere 30s after the kill")
	}
	t.Logf("wan behind slow links detected the killed node in %v", s.now.Sub(killedAt))
}

// delayHub is an in-memory Transport whose packets arrive delay after they
// were sent (each on its own goroutine, as a network would deliver them).
type delayHub struct {
	delay   time.Duration
	mu      sync.Mutex // guards runners
	runners map[string]*Runner
	wg      sync.WaitGroup // deliveries in flight
}

type delayTransport struct {
	hub  *delayHub
	self string
}

func (t delayTransport) SendPacket(ctx context.Context, to string, b []byte) error {
	t.hub.mu.Lock()
	r := t.hub.runners[to]
	t.hub.mu.Unlock()
	if r == nil {
		return errUnreachable
	}
	b = append([]byte(nil), b...)
	t.hub.wg.Go(func() {
		time.Sleep(t.hub.delay)
		r.HandlePacket(t.self, b)
	})
	return nil
}

// runDelayed runs three Runners with cfg for a simulated minute over a
// transport that delays every packet, and returns the suspect events seen.
func runDelayed(t *testing.T, cfg Config, delay time.Duration) (suspects []Event) {
	hub := &delayHub{delay: delay, runners: map[string]*Runner{}}
	ids := []string{"edge-a", "edge-b", "edge-c"}
	var mu sync.Mutex // guards suspects
	ctx, cancel := context.WithCancel(context.Background())
	for i, id := range ids {
		d, err := New(id, uint64(1+i), cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRunner(d, RunnerConfig{
			Transport: delayTransport{hub: hub, self: id},
			OnEvent: func(e Event) {
				if e.Kind == EventSuspect || e.Kind == EventDead {
					mu.Lock()
					suspects = append(suspects, e)
					mu.Unlock()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		hub.runners[id] = r
	}
	for _, id := range ids {
		for _, o := range ids {
			if o != id {
				if err := hub.runners[id].AddMember(o); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := hub.runners[id].Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "incarnations known", func() (bool, string) {
		for _, a := range ids {
			for _, m := range hub.runners[a].Members() {
				if m.Incarnation == 0 {
					return false, a + " does not know " + m.ID + "'s incarnation yet"
				}
			}
		}
		return true, ""
	})
	time.Sleep(time.Minute)
	cancel()
	for _, r := range hub.runners {
		r.Close()
	}
	hub.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return suspects
}

// Runners with the WAN profile whose every packet takes 300 ms (a 600 ms
// round trip, three times the LAN probe timeout and above the whole LAN probe
// interval) do not suspect each other; with the LAN profile they do. The
// synctest bubble gives the runners' timers and the delays a fake clock.
func TestRunnerWANProfileWithDelayedPackets(t *testing.T) {
	const delay = 300 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		if got := runDelayed(t, mustProfile(t, ProfileWAN), delay); len(got) > 0 {
			t.Errorf("wan with %v one-way delay: %d suspect/dead events, first %+v; want none", delay, len(got), got[0])
		}
	})
	synctest.Test(t, func(t *testing.T) {
		if got := runDelayed(t, mustProfile(t, ProfileLAN), delay); len(got) == 0 {
			t.Errorf("lan with %v one-way delay: no suspicion; the delay does not exceed the LAN timeout", delay)
		}
	})
}
