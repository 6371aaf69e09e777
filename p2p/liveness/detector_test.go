package liveness

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestKilledNodeIsDeadEverywhere(t *testing.T) {
	for _, n := range []int{2, 3, 5, 20} {
		for seed := uint64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("N=%d/seed=%d", n, seed), func(t *testing.T) {
				s := newSim(t, n, seed, DefaultConfig())
				s.run(5 * time.Second)
				victim := s.node(int(seed) % n)
				killedAt := s.now
				s.kill(victim)
				if !s.runUntil(killedAt.Add(10*time.Second), func() bool { return s.allSee(victim, StateDead) }) {
					for _, nd := range s.nodes {
						m, _ := nd.det.Status(victim.id)
						t.Logf("%s sees %s", nd.id, m.State)
					}
					t.Fatalf("victim not dead everywhere 10s after the kill")
				}
				// Nobody else was suspected on the way.
				for _, nd := range s.nodes {
					for _, e := range nd.events {
						if e.ID != victim.id && e.Kind == EventDead {
							t.Errorf("%s declared healthy %s dead", nd.id, e.ID)
						}
					}
				}
				// Each observer saw suspect (or heard dead directly) after the kill.
				for _, nd := range s.nodes {
					if nd == victim {
						continue
					}
					if _, ok := firstEvent(nd, victim.id, EventDead, killedAt); !ok {
						t.Errorf("%s has no dead event for the victim", nd.id)
					}
				}
			})
		}
	}
}

func TestNoFalsePositivesUnderLoss(t *testing.T) {
	s := newSim(t, 10, 42, DefaultConfig())
	s.loss = 0.10
	s.run(5 * time.Minute)
	all := func(string, string) bool { return true }
	suspects := s.countEvents(EventSuspect, all)
	if dead := s.countEvents(EventDead, all); dead > 0 {
		t.Fatalf("%d dead events with 10%% loss and no failures (suspect: %d)", dead, suspects)
	}
	if refuted := s.countEvents(EventRefuted, all); refuted != suspects {
		t.Errorf("suspect events %d, refuted %d: every suspicion must end refuted", suspects, refuted)
	}
	for _, nd := range s.nodes {
		for _, m := range nd.det.Members() {
			if m.State != StateAlive {
				t.Errorf("%s sees %s %s at the end", nd.id, m.ID, m.State)
			}
		}
	}
	// The loss must have been felt, else this test proves nothing.
	if suspects == 0 {
		t.Fatalf("no suspicion at all with 10%% loss: the harness drops nothing?")
	}
	t.Logf("suspicions refuted: %d", suspects)
}

// A node whose inbound packets wait up to slow before being processed (a
// starved CPU) must not get healthy nodes declared dead. Without Lifeguard
// (no local health, no dynamic suspicion) the same run does kill healthy
// nodes, which shows the test can fail.
func TestSlowNodeDoesNotKillHealthyNodes(t *testing.T) {
	run := func(cfg Config, slow time.Duration) (healthyDead int) {
		s := newSim(t, 8, 7, cfg)
		s.node(0).slow = slow
		s.run(3 * time.Minute)
		return s.countEvents(EventDead, func(_, subject string) bool { return subject != s.node(0).id })
	}
	for _, slow := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
		t.Run(fmt.Sprint("slow=", slow), func(t *testing.T) {
			if n := run(DefaultConfig(), slow); n > 0 {
				t.Errorf("healthy nodes declared dead %d times", n)
			}
		})
	}
	t.Run("control without lifeguard", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.AwarenessMaxMultiplier = 1
		cfg.SuspicionMaxTimeoutMult = 1
		if n := run(cfg, 2*time.Second); n == 0 {
			t.Errorf("plain SWIM survived a starved node too: the scenario is too weak")
		}
	})
}

// When every node is slow (the whole machine saturated), local health
// stretches the timeouts and nobody is declared dead.
func TestSaturatedClusterNoDeaths(t *testing.T) {
	for _, slow := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		t.Run(fmt.Sprint("slow=", slow), func(t *testing.T) {
			s := newSim(t, 10, 3, DefaultConfig())
			for _, nd := range s.nodes {
				nd.slow = slow
			}
			s.run(2 * time.Minute)
			if n := s.countEvents(EventDead, func(string, string) bool { return true }); n > 0 {
				t.Errorf("%d dead events in a saturated but healthy cluster", n)
			}
		})
	}
}

func TestRefutation(t *testing.T) {
	s := newSim(t, 3, 1, DefaultConfig())
	s.run(3 * time.Second)
	a, b, c := s.node(0), s.node(1), s.node(2)
	inc := b.det.Incarnation()
	if m, _ := a.det.Status(b.id); m.Incarnation != inc {
		t.Fatalf("a knows b at incarnation %d, want %d", m.Incarnation, inc)
	}
	// c falsely tells a that b is suspect.
	lie := encode(message{typ: msgGossip, entries: []entry{{kind: entrySuspect, node: b.id, inc: inc, from: c.id}}})
	out, err := a.det.Handle(c.id, lie, s.now)
	if err != nil {
		t.Fatal(err)
	}
	s.send(a, out)
	a.events = append(a.events, a.det.Events()...)
	if m, _ := a.det.Status(b.id); m.State != StateSuspect {
		t.Fatalf("a sees b %s after the accusation, want suspect", m.State)
	}
	s.schedule(a)
	accusedAt := s.now
	if !s.runUntil(s.now.Add(5*time.Second), func() bool {
		m, _ := a.det.Status(b.id)
		return m.State == StateAlive
	}) {
		t.Fatalf("b did not refute within 5s")
	}
	if b.det.Incarnation() <= inc {
		t.Errorf("b incarnation %d, want > %d", b.det.Incarnation(), inc)
	}
	if b.det.Refutations() == 0 {
		t.Errorf("b counted no refutation")
	}
	if _, ok := firstEvent(a, b.id, EventRefuted, accusedAt); !ok {
		t.Errorf("a has no refuted event for b: %v", a.events)
	}
	m, _ := a.det.Status(b.id)
	if m.Incarnation != b.det.Incarnation() {
		t.Errorf("a knows b at %d, b is at %d", m.Incarnation, b.det.Incarnation())
	}
}

func TestGracefulLeave(t *testing.T) {
	s := newSim(t, 6, 9, DefaultConfig())
	s.run(3 * time.Second)
	leaver := s.node(2)
	leftAt := s.now
	s.send(leaver, leaver.det.Leave(s.now))
	s.schedule(leaver)
	if !s.runUntil(s.now.Add(2*time.Second), func() bool { return s.allSee(leaver, StateLeft) }) {
		t.Fatalf("not left everywhere 2s after Leave")
	}
	s.kill(leaver) // the process exits
	s.run(30 * time.Second)
	if !s.allSee(leaver, StateLeft) {
		t.Fatalf("left did not stick after the process stopped")
	}
	for _, nd := range s.nodes {
		if _, ok := firstEvent(nd, leaver.id, EventDead, leftAt); ok {
			t.Errorf("%s declared the leaver dead", nd.id)
		}
		if _, ok := firstEvent(nd, leaver.id, EventSuspect, leftAt); ok {
			t.Errorf("%s suspected the leaver", nd.id)
		}
	}
	// It comes back later with a new incarnation.
	s.restart(leaver)
	if !s.runUntil(s.now.Add(3*time.Second), func() bool { return s.allSee(leaver, StateAlive) }) {
		t.Fatalf("a node that left and restarted is not alive everywhere")
	}
}

func TestPartitionHeal(t *testing.T) {
	s := newSim(t, 6, 11, DefaultConfig())
	s.run(3 * time.Second)
	left, right := s.nodes[:3], s.nodes[3:]
	s.partition(left, right)
	s.run(20 * time.Second)
	for _, a := range left {
		for _, b := range right {
			if m, _ := a.det.Status(b.id); m.State != StateDead {
				t.Fatalf("during the partition %s sees %s %s, want dead", a.id, b.id, m.State)
			}
		}
	}
	for _, a := range left {
		for _, b := range left {
			if m, ok := a.det.Status(b.id); ok && m.State != StateAlive {
				t.Fatalf("%s sees same-side %s %s", a.id, b.id, m.State)
			}
		}
	}
	s.heal()
	healedAt := s.now
	allAlive := func() bool {
		for _, nd := range s.nodes {
			if !s.allSee(nd, StateAlive) {
				return false
			}
		}
		return true
	}
	if !s.runUntil(s.now.Add(15*time.Second), allAlive) {
		for _, nd := range s.nodes {
			t.Logf("%s: %v", nd.id, nd.det.Members())
		}
		t.Fatalf("not all alive 15s after the heal")
	}
	t.Logf("healed in %v", s.now.Sub(healedAt))
	s.run(10 * time.Second)
	if !allAlive() {
		t.Fatalf("the cluster did not stay alive after the heal")
	}
}

func TestRestartWithHigherIncarnation(t *testing.T) {
	s := newSim(t, 5, 13, DefaultConfig())
	s.run(3 * time.Second)
	x := s.node(1)
	old := x.det.Incarnation()
	s.kill(x)
	if !s.runUntil(s.now.Add(10*time.Second), func() bool { return s.allSee(x, StateDead) }) {
		t.Fatal("not dead after the kill")
	}
	s.run(time.Second)
	restartedAt := s.now
	s.restart(x)
	if x.det.Incarnation() <= old {
		t.Fatalf("restart incarnation %d not above %d", x.det.Incarnation(), old)
	}
	if !s.runUntil(s.now.Add(5*time.Second), func() bool { return s.allSee(x, StateAlive) }) {
		t.Fatal("restarted node not alive everywhere within 5s")
	}
	for _, nd := range s.nodes {
		if nd == x {
			continue
		}
		if _, ok := firstEvent(nd, x.id, EventAlive, restartedAt); !ok {
			t.Errorf("%s has no alive event for the restarted node", nd.id)
		}
		if m, _ := nd.det.Status(x.id); m.Incarnation != x.det.Incarnation() {
			t.Errorf("%s knows incarnation %d, want %d", nd.id, m.Incarnation, x.det.Incarnation())
		}
	}
}

// A quick restart (before anyone noticed) keeps the node alive and moves
// everyone to the new incarnation.
func TestQuickRestart(t *testing.T) {
	s := newSim(t, 5, 17, DefaultConfig())
	s.run(3 * time.Second)
	x := s.node(3)
	s.kill(x)
	s.run(200 * time.Millisecond)
	s.restart(x)
	s.run(5 * time.Second)
	for _, nd := range s.nodes {
		if nd == x {
			continue
		}
		if m, _ := nd.det.Status(x.id); m.State != StateAlive || m.Incarnation != x.det.Incarnation() {
			t.Errorf("%s sees %s at %d, want alive at %d", nd.id, m.State, m.Incarnation, x.det.Incarnation())
		}
	}
}

func TestDeterministicReplay(t *testing.T) {
	trace := func() []string {
		s := newSim(t, 7, 99, DefaultConfig())
		s.loss = 0.2
		s.run(5 * time.Second)
		s.kill(s.node(4))
		s.run(20 * time.Second)
		var out []string
		for _, nd := range s.nodes {
			for _, e := range nd.events {
				out = append(out, fmt.Sprintf("%s %s %s %d %v", nd.id, e.Kind, e.ID, e.Incarnation, e.At.Sub(simEpoch)))
			}
		}
		return out
	}
	a, b := trace(), trace()
	if len(a) == 0 {
		t.Fatal("no events")
	}
	if !slices.Equal(a, b) {
		t.Fatalf("two runs with the same seed differ:\n%v\n%v", a, b)
	}
}

func TestUnknownSenderAndSubject(t *testing.T) {
	now := simEpoch
	d, err := New("self", 1, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddMember("a", now); err != nil {
		t.Fatal(err)
	}
	d.Tick(now)
	d.Events()
	// A ping from a stranger is answered with a bare ack (3 bytes).
	out, err := d.Handle("stranger", encode(message{typ: msgPing, seq: 7}), now)
	if err != nil || len(out) != 1 || out[0].To != "stranger" {
		t.Fatalf("Handle(stranger ping) = %v, %v; want one ack", out, err)
	}
	if m, err := decode(out[0].Data); err != nil || m.typ != msgAck || m.seq != 7 {
		t.Fatalf("reply = %+v, %v; want ack 7", m, err)
	}
	// A stranger's claims are ignored, even about known members.
	out, err = d.Handle("stranger", encode(message{typ: msgGossip, entries: []entry{
		{kind: entryDead, node: "a", inc: 99, from: "stranger"},
	}}), now)
	if err != nil || len(out) != 0 {
		t.Fatalf("Handle(stranger gossip) = %v, %v", out, err)
	}
	// A member's claims about strangers are ignored and create no member.
	out, err = d.Handle("a", encode(message{typ: msgPingReq, seq: 1, target: "ghost", entries: []entry{
		{kind: entryAlive, node: "ghost", inc: 5},
		{kind: entrySuspect, node: "ghost2", inc: 5, from: "a"},
	}}), now)
	if err != nil || len(out) != 0 {
		t.Fatalf("Handle(pingreq for a stranger) = %v, %v", out, err)
	}
	if got := len(d.Members()); got != 1 {
		t.Fatalf("%d members, want 1", got)
	}
	if m, _ := d.Status("a"); m.State != StateAlive {
		t.Fatalf("a is %s", m.State)
	}
	if ev := d.Events(); len(ev) != 0 {
		t.Fatalf("events %v", ev)
	}
	// Garbage is an error and changes nothing.
	if _, err := d.Handle("a", []byte{0xff, 1, 2}, now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Handle(garbage) err = %v, want ErrMalformed", err)
	}
}

func TestAddMemberErrors(t *testing.T) {
	d, err := New("self", 1, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	long := string(make([]byte, MaxIDLen+1))
	for _, id := range []string{"", "self", long} {
		if err := d.AddMember(id, simEpoch); !errors.Is(err, ErrInvalidID) {
			t.Errorf("AddMember(%.10q) = %v; want ErrInvalidID", id, err)
		}
	}
	if err := d.AddMember("a", simEpoch); err != nil {
		t.Fatal(err)
	}
	if err := d.AddMember("a", simEpoch); err != nil {
		t.Fatalf("second AddMember = %v; want nil", err)
	}
	d.RemoveMember("a")
	d.RemoveMember("a")
	if _, ok := d.Status("a"); ok {
		t.Fatal("a still known after RemoveMember")
	}
	if _, err := New("", 1, DefaultConfig()); !errors.Is(err, ErrInvalidID) {
		t.Errorf("New(\"\") err = %v", err)
	}
}

func TestSuspicionDeadline(t *testing.T) {
	start := simEpoch
	s := &suspicion{start: start, k: 3, min: 2 * time.Second, max: 8 * time.Second}
	prev := s.deadline()
	if got := prev.Sub(start); got != 8*time.Second {
		t.Fatalf("no confirmation: timeout %v, want max 8s", got)
	}
	for n := 1; n <= 3; n++ {
		s.n = n
		d := s.deadline()
		if !d.Before(prev) {
			t.Fatalf("n=%d: timeout %v did not shrink from %v", n, d.Sub(start), prev.Sub(start))
		}
		prev = d
	}
	if got := prev.Sub(start); got != 2*time.Second {
		t.Fatalf("k confirmations: timeout %v, want min 2s", got)
	}
	s = &suspicion{start: start, k: 0, min: 2 * time.Second, max: 8 * time.Second}
	if got := s.deadline().Sub(start); got != 2*time.Second {
		t.Fatalf("k=0: timeout %v, want min", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"zero interval", func(c *Config) { c.ProbeInterval = 0 }},
		{"timeout above interval", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }},
		{"zero timeout", func(c *Config) { c.ProbeTimeout = 0 }},
		{"negative indirect", func(c *Config) { c.IndirectChecks = -1 }},
		{"zero suspicion mult", func(c *Config) { c.SuspicionMult = 0 }},
		{"zero max mult", func(c *Config) { c.SuspicionMaxTimeoutMult = 0 }},
		{"zero awareness", func(c *Config) { c.AwarenessMaxMultiplier = 0 }},
		{"zero gossip interval", func(c *Config) { c.GossipInterval = 0 }},
		{"zero gossip nodes", func(c *Config) { c.GossipNodes = 0 }},
		{"zero retransmit", func(c *Config) { c.RetransmitMult = 0 }},
		{"negative reconnect", func(c *Config) { c.ReconnectInterval = -1 }},
		{"tiny packets", func(c *Config) { c.MaxPacketSize = 100 }},
		{"huge packets", func(c *Config) { c.MaxPacketSize = MaxWirePacket + 1 }},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v; want ErrInvalidConfig", tt.name, err)
		}
		if _, err := New("x", 1, c); err == nil {
			t.Errorf("%s: New accepted the config", tt.name)
		}
	}
}

func TestLocalHealthRisesAndFalls(t *testing.T) {
	s := newSim(t, 5, 21, DefaultConfig())
	slow := s.node(0)
	slow.slow = 2 * time.Second
	s.run(30 * time.Second)
	if h := slow.det.LocalHealth(); h == 0 {
		t.Fatalf("starved node health %d, want > 0", h)
	}
	for _, nd := range s.nodes[1:] {
		if h := nd.det.LocalHealth(); h > 2 {
			t.Errorf("healthy %s has health %d", nd.id, h)
		}
	}
	slow.slow = 0
	s.run(60 * time.Second)
	if h := slow.det.LocalHealth(); h != 0 {
		t.Fatalf("recovered node health %d, want 0", h)
	}
}

// TestSuspicionCeiling: however far local health stretches a suspicion, it never outlasts
// SuspicionMaxTimeout, so a failed member is dead within about 10 s even on an overloaded or
// partly cut-off observer; a healthy observer's timeouts stay unchanged.
func TestSuspicionCeiling(t *testing.T) {
	cfg := DefaultConfig()
	for _, health := range []int{0, cfg.AwarenessMaxMultiplier - 1} {
		d, err := New("self", 1, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b", "c"} {
			if err := d.AddMember(id, simEpoch); err != nil {
				t.Fatal(err)
			}
		}
		d.health = health
		d.onSuspect(entry{kind: entrySuspect, node: "a", inc: 1, from: "b"}, simEpoch)
		s := d.members["a"].susp
		if s == nil {
			t.Fatalf("health %d: no suspicion started", health)
		}
		unstretched := time.Duration(cfg.SuspicionMult) * cfg.ProbeInterval * time.Duration(cfg.SuspicionMaxTimeoutMult)
		switch {
		case s.max > cfg.SuspicionMaxTimeout:
			t.Fatalf("health %d: suspicion max %v exceeds the ceiling %v", health, s.max, cfg.SuspicionMaxTimeout)
		case health == 0 && s.max != unstretched:
			t.Fatalf("healthy: suspicion max %v, want the unstretched %v", s.max, unstretched)
		case s.min > s.max:
			t.Fatalf("health %d: min %v above max %v", health, s.min, s.max)
		}
	}
}
