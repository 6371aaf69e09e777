package liveness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// memHub is an in-memory Transport: SendPacket hands the bytes straight to
// the target Runner's HandlePacket.
type memHub struct {
	mu      sync.Mutex // guards runners and down
	runners map[string]*Runner
	down    map[string]bool
}

type memTransport struct {
	hub  *memHub
	self string
}

var errUnreachable = errors.New("unreachable")

func (t memTransport) SendPacket(ctx context.Context, to string, b []byte) error {
	t.hub.mu.Lock()
	r := t.hub.runners[to]
	dead := t.hub.down[to] || t.hub.down[t.self]
	t.hub.mu.Unlock()
	if r == nil || dead {
		return errUnreachable
	}
	r.HandlePacket(t.self, append([]byte(nil), b...))
	return ctx.Err()
}

func fastConfig() Config {
	c := DefaultConfig()
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 40 * time.Millisecond
	c.GossipInterval = 40 * time.Millisecond
	c.ReconnectInterval = 300 * time.Millisecond
	return c
}

// TestRunner runs four Runners over memTransport in a synctest bubble: the
// Runners' timers and the test's waits use the bubble's fake clock, so the
// seconds of cluster life below take milliseconds and never depend on how
// busy the machine is.
func TestRunner(t *testing.T) { synctest.Test(t, testRunner) }

func testRunner(t *testing.T) {
	hub := &memHub{runners: map[string]*Runner{}, down: map[string]bool{}}
	ids := []string{"n0", "n1", "n2", "n3"}
	var evMu sync.Mutex // guards events
	events := map[string][]Event{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, id := range ids {
		d, err := New(id, uint64(1000+i), fastConfig())
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRunner(d, RunnerConfig{
			Transport: memTransport{hub: hub, self: id},
			OnEvent: func(e Event) {
				evMu.Lock()
				events[id] = append(events[id], e)
				evMu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		hub.mu.Lock()
		hub.runners[id] = r
		hub.mu.Unlock()
		t.Cleanup(func() { r.Close() })
	}
	for _, id := range ids {
		r := hub.runners[id]
		for _, o := range ids {
			if o != id {
				if err := r.AddMember(o); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.runners["n0"].Start(ctx); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v; want ErrStarted", err)
	}
	// sees reports whether observer sees subject in state want (at incarnation
	// inc unless 0), and what it sees instead.
	sees := func(observer, subject string, want State, inc uint64) (bool, string) {
		m, ok := hub.runners[observer].Status(subject)
		if ok && m.State == want && (inc == 0 || m.Incarnation == inc) {
			return true, ""
		}
		return false, fmt.Sprintf("%s sees %s %v at incarnation %d (known %v)", observer, subject, m.State, m.Incarnation, ok)
	}
	testutil.WaitFor(t, 5*time.Second, "incarnations known", func() (bool, string) {
		for i, a := range ids {
			for j, b := range ids {
				if ok, why := sees(a, b, StateAlive, uint64(1000+j)); i != j && !ok {
					return false, why
				}
			}
		}
		return true, ""
	})

	// Kill n3: no more packets in or out.
	hub.mu.Lock()
	hub.down["n3"] = true
	hub.mu.Unlock()
	hub.runners["n3"].Close()
	testutil.WaitFor(t, 10*time.Second, "n3 dead everywhere", func() (bool, string) {
		for _, o := range []string{"n0", "n1", "n2"} {
			if ok, why := sees(o, "n3", StateDead, 0); !ok {
				return false, why
			}
		}
		return true, ""
	})

	// n2 leaves gracefully.
	lctx, lcancel := context.WithTimeout(ctx, time.Second)
	defer lcancel()
	if err := hub.runners["n2"].Leave(lctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "n2 left at n0 and n1", func() (bool, string) {
		for _, o := range []string{"n0", "n1"} {
			if ok, why := sees(o, "n2", StateLeft, 0); !ok {
				return false, why
			}
		}
		return true, ""
	})

	// OnEvent runs on the runner goroutine, shortly after the state changed.
	testutil.WaitFor(t, 2*time.Second, "dead and left events at n0", func() (bool, string) {
		evMu.Lock()
		defer evMu.Unlock()
		var dead, left bool
		for _, e := range events["n0"] {
			dead = dead || (e.ID == "n3" && e.Kind == EventDead)
			left = left || (e.ID == "n2" && e.Kind == EventLeft)
		}
		return dead && left, fmt.Sprintf("n3 dead event %v, n2 left event %v", dead, left)
	})
	st := hub.runners["n0"].Stats()
	if st.PacketsSent == 0 || st.BytesReceived == 0 {
		t.Errorf("stats not counted: %+v", st)
	}
	if got := len(hub.runners["n0"].Members()); got != 3 {
		t.Errorf("n0 has %d members, want 3", got)
	}
	// Garbage is counted, not fatal.
	hub.runners["n0"].HandlePacket("n1", []byte{0xff})
	if hub.runners["n0"].Stats().DecodeErrors != 1 {
		t.Errorf("decode error not counted")
	}
	for _, id := range ids {
		r := hub.runners[id]
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := r.Start(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Start after Close = %v; want ErrClosed", err)
		}
	}
}

func TestNewRunnerNeedsTransport(t *testing.T) {
	d, _ := New("a", 1, DefaultConfig())
	if _, err := NewRunner(d, RunnerConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewRunner without transport = %v", err)
	}
}
