package balance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBreakerTransitions drives one endpoint's breaker through Pick and
// Ticket.Done. Steps: ok, fail, cancel (pick and complete at once); hold
// (pick and keep the ticket); ok*, fail*, cancel* (complete the oldest held
// ticket); wait=D; nopick (Pick must fail naming the reason). After each step
// the breaker state must be the one given.
func TestBreakerTransitions(t *testing.T) {
	type step struct{ do, want string }
	cases := []struct {
		name  string
		cfg   BreakerConfig
		steps []step
	}{
		{"below threshold stays closed", BreakerConfig{}, []step{
			{"fail", "closed"}, {"fail", "closed"}, {"fail", "closed"}, {"fail", "closed"},
			{"ok", "closed"}, {"fail", "closed"}, {"fail", "closed"}, {"fail", "closed"}, {"fail", "closed"},
		}},
		{"threshold opens, timeout half-opens", BreakerConfig{}, []step{
			{"fail", "closed"}, {"fail", "closed"}, {"fail", "closed"}, {"fail", "closed"},
			{"fail", "open"}, {"nopick", "open"}, {"wait=29s", "open"}, {"nopick", "open"},
			{"wait=1s", "open"}, {"hold", "half_open"},
		}},
		{"half-open admits N probes and closes when they succeed", BreakerConfig{FailureThreshold: 1, Timeout: time.Second, HalfOpenRequests: 3}, []step{
			{"fail", "open"}, {"wait=1s", "open"}, {"hold", "half_open"}, {"hold", "half_open"}, {"hold", "half_open"},
			{"nopick", "half_open"}, {"ok*", "half_open"}, {"ok*", "half_open"}, {"nopick", "half_open"}, {"ok*", "closed"},
			{"ok", "closed"},
		}},
		{"half-open failure reopens for a full timeout", BreakerConfig{FailureThreshold: 2, Timeout: 10 * time.Second, HalfOpenRequests: 2}, []step{
			{"fail", "closed"}, {"fail", "open"}, {"wait=10s", "open"}, {"hold", "half_open"}, {"hold", "half_open"},
			{"ok*", "half_open"}, {"fail*", "open"}, {"wait=9s", "open"}, {"nopick", "open"}, {"wait=1s", "open"},
			{"ok", "half_open"}, {"ok", "closed"},
		}},
		{"cancelled probe frees its slot", BreakerConfig{FailureThreshold: 1, Timeout: time.Second, HalfOpenRequests: 1}, []step{
			{"fail", "open"}, {"wait=1s", "open"}, {"hold", "half_open"}, {"nopick", "half_open"},
			{"cancel*", "half_open"}, {"hold", "half_open"}, {"ok*", "closed"},
		}},
		{"outcomes from before a transition are ignored", BreakerConfig{FailureThreshold: 2, Timeout: time.Second, HalfOpenRequests: 1}, []step{
			{"hold", "closed"}, {"hold", "closed"}, {"fail", "closed"}, {"fail", "open"},
			{"ok*", "open"}, {"wait=1s", "open"}, {"hold", "half_open"}, {"fail*", "half_open"}, {"ok*", "closed"},
		}},
		{"failure rate in the window opens", BreakerConfig{FailureThreshold: 100, FailureRate: 0.5, MinRequests: 10, Window: 10 * time.Second}, []step{
			{"ok", "closed"}, {"fail", "closed"}, {"ok", "closed"}, {"fail", "closed"}, {"ok", "closed"},
			{"fail", "closed"}, {"ok", "closed"}, {"fail", "closed"}, {"ok", "closed"}, {"fail", "open"},
		}},
		{"failure rate forgets outside the window", BreakerConfig{FailureThreshold: 100, FailureRate: 0.5, MinRequests: 4, Window: 10 * time.Second}, []step{
			{"fail", "closed"}, {"fail", "closed"}, {"ok", "closed"}, {"wait=11s", "closed"},
			{"fail", "closed"}, {"ok", "closed"}, {"ok", "closed"}, {"ok", "closed"}, {"fail", "closed"},
			{"fail", "open"},
		}},
		{"cancellations are no verdict", BreakerConfig{FailureThreshold: 2}, []step{
			{"fail", "closed"}, {"cancel", "closed"}, {"fail", "open"},
		}},
		{"disabled never opens", BreakerConfig{Disabled: true, FailureThreshold: 1}, []step{
			{"fail", "closed"}, {"fail", "closed"}, {"ok", "closed"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var events []Event
			b, clk := newTest(t, Config{Breaker: c.cfg, Outlier: OutlierConfig{Disabled: true}, OnEvent: func(e Event) { events = append(events, e) }})
			eps := []Endpoint{{ID: "a", Node: "n1"}}
			var held []Ticket
			for i, s := range c.steps {
				do, arg, _ := strings.Cut(s.do, "=")
				switch do {
				case "ok", "fail", "cancel", "hold":
					_, tk, err := b.Pick(Request{}, eps)
					if err != nil {
						t.Fatalf("step %d %s: %v", i, s.do, err)
					}
					switch do {
					case "ok":
						tk.Done(time.Millisecond, OK)
					case "fail":
						tk.Done(time.Millisecond, ServerError)
					case "cancel":
						tk.Done(time.Millisecond, Canceled)
					default:
						held = append(held, tk)
					}
				case "ok*", "fail*", "cancel*":
					o := map[string]Outcome{"ok*": OK, "fail*": Timeout, "cancel*": Canceled}[do]
					held[0].Done(time.Millisecond, o)
					held = held[1:]
				case "wait":
					d, _ := time.ParseDuration(arg)
					clk.Advance(d)
				case "nopick":
					_, _, err := b.Pick(Request{}, eps)
					if !errors.Is(err, ErrNoEndpoint) || !strings.Contains(err.Error(), "a@n1 breaker") {
						t.Fatalf("step %d: Pick gave %v, want a breaker reason", i, err)
					}
				default:
					t.Fatalf("bad step %q", s.do)
				}
				if got := b.Status("a")[0].Breaker.String(); got != s.want {
					t.Fatalf("step %d (%s): state %s, want %s", i, s.do, got, s.want)
				}
			}
			for _, e := range events {
				if e.Kind != BreakerChanged || e.Endpoint != "a" || e.From == e.To {
					t.Fatalf("odd event %+v", e)
				}
			}
		})
	}
}

func TestBreakerStatus(t *testing.T) {
	b, clk := newTest(t, Config{Breaker: BreakerConfig{FailureThreshold: 2, Timeout: 30 * time.Second}, Outlier: OutlierConfig{Disabled: true}})
	eps := endpoints(2)
	pickDone(t, b, Request{Exclude: []string{"ep1"}}, eps, time.Millisecond, ConnectError)
	if s := b.Status("ep0")[0]; s.ConsecutiveFailures != 1 || s.Breaker != Closed {
		t.Fatalf("after one failure: %+v", s)
	}
	pickDone(t, b, Request{Exclude: []string{"ep1"}}, eps, time.Millisecond, ConnectError)
	s := b.Status("ep0")[0]
	if s.Breaker != Open || !s.BreakerUntil.Equal(clk.Now().Add(30*time.Second)) || s.BreakerOpens != 1 {
		t.Fatalf("after two failures: %+v", s)
	}
	// The open endpoint is skipped while another is usable.
	for i := 0; i < 10; i++ {
		if ep := pickDone(t, b, Request{}, eps, time.Millisecond, OK); ep.ID != "ep0" && ep.ID != "ep1" || ep.ID == "ep0" {
			t.Fatalf("picked %s with an open breaker", ep.ID)
		}
	}
}
