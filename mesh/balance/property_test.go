package balance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Whatever the sequence of picks, outcomes, time steps and health changes,
// Pick never returns a down endpoint or one whose breaker is open, returns an
// ejected endpoint only when no clearly usable one exists, and fails only
// when no endpoint is clearly usable. In-flight counts return to zero.
func TestPropertyPickAvoidsBrokenEndpoints(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(rt, "n")
		policy := rapid.SampledFrom(Policies).Draw(rt, "policy")
		cfg := Config{
			Policy:  policy,
			Rand:    seeded(rapid.Uint64().Draw(rt, "seed")),
			Breaker: BreakerConfig{FailureThreshold: rapid.IntRange(1, 4).Draw(rt, "threshold"), Timeout: 5 * time.Second, HalfOpenRequests: rapid.IntRange(1, 3).Draw(rt, "probes")},
			Outlier: OutlierConfig{Consecutive: rapid.IntRange(1, 4).Draw(rt, "consecutive"), BaseEjectionTime: 3 * time.Second, MaxEjectionPercent: rapid.IntRange(1, 100).Draw(rt, "pct")},
		}
		// Breaker transitions follow closed -> open -> half_open -> closed|open.
		allowed := map[[2]BreakerState]bool{{Closed, Open}: true, {Open, HalfOpen}: true, {HalfOpen, Closed}: true, {HalfOpen, Open}: true}
		last := map[string]BreakerState{}
		cfg.OnEvent = func(e Event) {
			if e.Kind != BreakerChanged {
				return
			}
			if !allowed[[2]BreakerState{e.From, e.To}] || last[e.Endpoint] != e.From {
				rt.Fatalf("%s: transition %v -> %v after %v", e.Endpoint, e.From, e.To, last[e.Endpoint])
			}
			last[e.Endpoint] = e.To
		}
		b, clk := newTest(t, cfg)
		eps := make([]Endpoint, n)
		for i := range eps {
			eps[i] = Endpoint{ID: fmt.Sprintf("e%d", i), Node: "n", Region: rapid.SampledFrom([]string{"", "r1", "r2"}).Draw(rt, "region"), Weight: rapid.IntRange(0, 3).Draw(rt, "w")}
		}
		var held []Ticket
		steps := rapid.IntRange(20, 300).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0:
				clk.Advance(time.Duration(rapid.IntRange(0, 4000).Draw(rt, "ms")) * time.Millisecond)
			case 1:
				i := rapid.IntRange(0, n-1).Draw(rt, "toggle")
				if eps[i].Down == "" {
					eps[i].Down = "unhealthy"
				} else {
					eps[i].Down = ""
				}
			case 2:
				if len(held) > 0 {
					k := rapid.IntRange(0, len(held)-1).Draw(rt, "held")
					held[k].Done(time.Millisecond, Outcome(rapid.IntRange(0, 5).Draw(rt, "outcome")))
					held[k].Done(time.Millisecond, OK) // ignored
					held = append(held[:k], held[k+1:]...)
				}
			default:
				now := clk.Now()
				before := map[string]EndpointStatus{}
				clearly := 0
				for i, st := range b.Status(ids(eps)...) {
					before[st.ID] = st
					if eps[i].Down == "" && st.Breaker == Closed && !st.Ejected {
						clearly++
					}
				}
				ep, tk, err := b.Pick(Request{Region: "r1", Key: rapid.SampledFrom([]string{"", "a", "b"}).Draw(rt, "key")}, eps)
				if err != nil {
					if !errors.Is(err, ErrNoEndpoint) || clearly > 0 {
						rt.Fatalf("Pick failed with %d clearly usable endpoints: %v", clearly, err)
					}
					continue
				}
				st := before[ep.ID]
				if ep.Down != "" {
					rt.Fatalf("picked down endpoint %s", ep.ID)
				}
				if st.Breaker == Open && now.Before(st.BreakerUntil) {
					rt.Fatalf("picked %s with an open breaker", ep.ID)
				}
				if st.Ejected && clearly > 0 {
					rt.Fatalf("picked ejected %s while %d endpoints were clearly usable", ep.ID, clearly)
				}
				if rapid.Bool().Draw(rt, "hold") {
					held = append(held, tk)
				} else {
					tk.Done(time.Millisecond, Outcome(rapid.IntRange(0, 5).Draw(rt, "outcome")))
				}
			}
		}
		for _, tk := range held {
			tk.Done(time.Millisecond, OK)
		}
		for _, st := range b.Status() {
			if st.InFlight != 0 {
				rt.Fatalf("%s: %d in flight after every ticket is done", st.ID, st.InFlight)
			}
		}
	})
}

func ids(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.ID
	}
	return out
}

// The budget never grants more retries within a window than MinPerSecond *
// Window + Ratio * requests of that window, counted here from the log of
// every request and granted retry.
func TestPropertyBudgetInvariant(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := BudgetConfig{
			Ratio:        rapid.Float64Range(0.01, 1).Draw(rt, "ratio"),
			MinPerSecond: rapid.Float64Range(0.1, 5).Draw(rt, "min"),
			Window:       time.Duration(rapid.IntRange(1, 20).Draw(rt, "window")) * time.Second,
		}
		bud := newBudget(&cfg)
		slot := int64(bud.r.slot)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var reqs, retries []int64 // slot ids
		inWindow := func(log []int64, cur int64) (n int) {
			for _, id := range log {
				if cur-id >= 0 && cur-id < ringBuckets {
					n++
				}
			}
			return n
		}
		granted := 0
		for s := rapid.IntRange(20, 400).Draw(rt, "steps"); s > 0; s-- {
			now = now.Add(time.Duration(rapid.IntRange(0, 300).Draw(rt, "dt")) * time.Millisecond)
			cur := now.UnixNano() / slot
			if rapid.Bool().Draw(rt, "isRequest") {
				bud.request(now)
				reqs = append(reqs, cur)
				continue
			}
			if bud.withdraw(now) {
				granted++
				retries = append(retries, cur)
				limit := cfg.MinPerSecond*cfg.Window.Seconds() + cfg.Ratio*float64(inWindow(reqs, cur))
				if got := float64(inWindow(retries, cur)); got > limit {
					rt.Fatalf("%v retries in the window, limit %.2f", got, limit)
				}
			} else if float64(inWindow(retries, cur))+1 <= cfg.MinPerSecond*cfg.Window.Seconds()+cfg.Ratio*float64(inWindow(reqs, cur)) {
				rt.Fatalf("retry refused although the window allows it")
			}
		}
	})
}
