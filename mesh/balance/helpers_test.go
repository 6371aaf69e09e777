package balance

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock: time moves only with Advance, which fires due
// timers.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    chan time.Time
	at   time.Time
	done bool
	clk  *fakeClock
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: c.now.Add(d), clk: c}
	if d <= 0 {
		t.c <- c.now
		t.done = true
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			t.c <- c.now
			continue
		}
		if !t.done {
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func newTest(t testing.TB, cfg Config) (*Balancer, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	if cfg.Rand == nil {
		cfg.Rand = seeded(1)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

func endpoints(n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{ID: fmt.Sprintf("ep%d", i), Node: fmt.Sprintf("node%d", i%3)}
	}
	return eps
}

// pickDone picks and immediately completes the request with latency and o.
func pickDone(t testing.TB, b *Balancer, req Request, eps []Endpoint, lat time.Duration, o Outcome) Endpoint {
	t.Helper()
	ep, tk, err := b.Pick(req, eps)
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(lat, o)
	return ep
}

// chiSquare of observed counts against a uniform expectation.
func chiSquare(counts map[string]int, n int, total int) float64 {
	exp := float64(total) / float64(n)
	var x float64
	for i := 0; i < n; i++ {
		o := float64(counts[fmt.Sprintf("ep%d", i)])
		x += (o - exp) * (o - exp) / exp
	}
	return x
}

// chi2Crit999 is the chi-square critical value at p = 0.001 for df degrees of
// freedom (Wilson-Hilferty approximation).
func chi2Crit999(df int) float64 {
	const z = 3.090 // one-sided 0.999 quantile of the standard normal
	k := float64(df)
	a := 2 / (9 * k)
	v := 1 - a + z*math.Sqrt(a)
	return k * v * v * v
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
