package balance

import (
	"fmt"
	"testing"
	"time"
)

func TestEjectionCap(t *testing.T) {
	for _, c := range []struct{ n, pct, want int }{{10, 10, 1}, {10, 30, 3}, {2, 10, 1}, {20, 10, 2}, {1, 10, 0}, {10, 0, 0}, {4, 100, 4}} {
		t.Run(fmt.Sprintf("n=%d,pct=%d", c.n, c.pct), func(t *testing.T) {
			cfg := Config{Breaker: BreakerConfig{Disabled: true}, Outlier: OutlierConfig{Consecutive: 3, MaxEjectionPercent: c.pct}}
			if c.pct == 0 {
				cfg.Outlier.MaxEjectionPercent = 0
			}
			var capped int
			cfg.OnEvent = func(e Event) {
				if e.Kind == EjectionCapped {
					capped++
				}
			}
			b, _ := newTest(t, cfg)
			if c.pct == 0 { // 0 means the default (10); reconfigure a real 0 through the field after defaults
				b.cfg.Outlier.MaxEjectionPercent = 0
			}
			eps := endpoints(c.n)
			// Every endpoint fails every request (a total outage).
			for i := 0; i < c.n*10; i++ {
				pickDone(t, b, Request{}, eps, time.Millisecond, ServerError)
			}
			ejected := 0
			for _, s := range b.Status() {
				if s.Ejected {
					ejected++
				}
			}
			if ejected != c.want {
				t.Fatalf("%d ejected, want %d", ejected, c.want)
			}
			if c.want < c.n && capped == 0 {
				t.Fatal("no EjectionCapped event")
			}
		})
	}
}

func TestEjectionSkipsAndGrows(t *testing.T) {
	var evs []Event
	b, clk := newTest(t, Config{
		Breaker: BreakerConfig{Disabled: true},
		Outlier: OutlierConfig{Consecutive: 2, BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 25 * time.Second, MaxEjectionPercent: 50},
		OnEvent: func(e Event) { evs = append(evs, e) },
	})
	eps := endpoints(4)
	fail := func() {
		for i := 0; i < 2; i++ {
			pickDone(t, b, Request{Exclude: []string{"ep1", "ep2", "ep3"}}, eps, time.Millisecond, ConnectError)
		}
	}
	check := func(want time.Duration) {
		t.Helper()
		s := b.Status("ep0")[0]
		if !s.Ejected || s.EjectedUntil.Sub(clk.Now()) != want {
			t.Fatalf("ejection %+v, want %v from now", s, want)
		}
		for i := 0; i < 20; i++ {
			if ep := pickDone(t, b, Request{}, eps, time.Millisecond, OK); ep.ID == "ep0" {
				t.Fatal("picked an ejected endpoint")
			}
		}
	}
	fail()
	check(10 * time.Second)
	clk.Advance(10 * time.Second)
	fail()
	check(20 * time.Second) // second ejection: twice as long
	clk.Advance(20 * time.Second)
	fail()
	check(25 * time.Second) // third: capped at MaxEjectionTime
	clk.Advance(25 * time.Second)
	if b.Status("ep0")[0].Ejected {
		t.Fatal("still ejected after its time")
	}
	// A long healthy period brings the multiplier down again.
	clk.Advance(time.Minute)
	fail()
	check(10 * time.Second)
	kinds := map[EventKind]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds[Ejected] != 4 {
		t.Fatalf("events %v, want 4 ejections", kinds)
	}
}

// When every usable endpoint is ejected they are used anyway (panic mode).
func TestEjectionPanicMode(t *testing.T) {
	b, _ := newTest(t, Config{Breaker: BreakerConfig{Disabled: true}, Outlier: OutlierConfig{Consecutive: 1, MaxEjectionPercent: 100}})
	eps := endpoints(2)
	pickDone(t, b, Request{}, eps, time.Millisecond, ConnectError)
	pickDone(t, b, Request{}, eps, time.Millisecond, ConnectError)
	if s := b.Status(); !s[0].Ejected || !s[1].Ejected {
		t.Fatalf("both should be ejected: %+v", s)
	}
	if _, _, err := b.Pick(Request{}, eps); err != nil {
		t.Fatalf("panic mode should still pick: %v", err)
	}
}

// The state of endpoints that stopped appearing is dropped after staleAfter,
// except while requests to them are in flight.
func TestStaleStateDropped(t *testing.T) {
	b, clk := newTest(t, Config{})
	old := endpoints(50)
	_, held, _ := b.Pick(Request{}, old[:1])
	for i := 0; i < 100; i++ {
		pickDone(t, b, Request{}, old, time.Millisecond, OK)
	}
	cur := []Endpoint{{ID: "new"}}
	for i := 0; i < 15; i++ {
		clk.Advance(time.Minute)
		pickDone(t, b, Request{}, cur, time.Millisecond, OK)
	}
	ids := map[string]bool{}
	for _, s := range b.Status() {
		ids[s.ID] = true
	}
	if len(ids) != 2 || !ids["new"] || !ids["ep0"] {
		t.Fatalf("states kept: %v; want the current endpoint and the one with a request in flight", ids)
	}
	held.Done(time.Millisecond, OK)
}
