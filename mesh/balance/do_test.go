package balance

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Do tests run in a synctest bubble: time.Now, timers and the SystemClock
// are virtual, so seconds of backoff, deadlines and slow endpoints take no
// real time and the runs are deterministic.

var errRefused = errors.New("connection refused")

// sleepOrCancel waits d of (virtual) time unless ctx ends first.
func sleepOrCancel(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newSys(t testing.TB, cfg Config) *Balancer {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = seeded(7)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDoRetriesIdempotentElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{})
		defer b.Close()
		var released atomic.Int32
		res, rep, err := b.Do(context.Background(), CallInfo{Method: "GET"}, endpoints(2), func(ctx context.Context, ep Endpoint) (Result, error) {
			if ep.ID == "ep0" {
				return Result{Status: 503, Release: func() { released.Add(1) }}, nil
			}
			return Result{Status: 200, Value: "hello"}, nil
		})
		if err != nil || res.Value != "hello" {
			t.Fatalf("res %+v err %v", res, err)
		}
		if len(rep.Attempts) != 2 || rep.Attempts[0].Outcome != ServerError || !rep.Attempts[1].Retry || !rep.Attempts[1].Won {
			t.Fatalf("report %+v", rep)
		}
		if released.Load() != 1 {
			t.Fatalf("the retried 503 was released %d times", released.Load())
		}
	})
}

func TestDoRetryPolicy(t *testing.T) {
	cases := []struct {
		name     string
		call     CallInfo
		fail     func() (Result, error) // what ep0 answers; ep1 answers 200
		attempts int
		status   int
		errKind  error
	}{
		{"POST 503 is returned, not retried", CallInfo{Method: "POST"}, func() (Result, error) { return Result{Status: 503}, nil }, 1, 503, nil},
		{"POST never reached is retried", CallInfo{Method: "POST"}, func() (Result, error) { return Result{}, NotReached(errRefused) }, 2, 200, nil},
		{"POST reset after send is not retried", CallInfo{Method: "POST"}, func() (Result, error) { return Result{}, errors.New("stream reset") }, 1, 0, ErrExhausted},
		{"POST marked idempotent is retried", CallInfo{Method: "POST", Idempotent: true}, func() (Result, error) { return Result{Status: 502}, nil }, 2, 200, nil},
		{"DELETE timeout is retried", CallInfo{Method: "delete"}, func() (Result, error) { return Result{}, &OutcomeError{Timeout, errors.New("slow")} }, 2, 200, nil},
		{"GET 404 is an answer", CallInfo{Method: "GET"}, func() (Result, error) { return Result{Status: 404}, nil }, 1, 404, nil},
		{"MaxAttempts 1 disables retries", CallInfo{Method: "GET", MaxAttempts: 1}, func() (Result, error) { return Result{}, NotReached(errRefused) }, 1, 0, ErrExhausted},
		{"raw TCP retried only if not reached", CallInfo{}, func() (Result, error) { return Result{}, NotReached(errRefused) }, 2, 200, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newSys(t, Config{Policy: IPHash})
				defer b.Close()
				eps := endpoints(2)
				c.call.Key = keyOwnedBy(t, b, eps, "ep0")
				res, rep, err := b.Do(context.Background(), c.call, eps, func(ctx context.Context, ep Endpoint) (Result, error) {
					if ep.ID == "ep0" {
						return c.fail()
					}
					return Result{Status: 200}, nil
				})
				if len(rep.Attempts) != c.attempts || res.Status != c.status || !errors.Is(err, c.errKind) || (c.errKind == nil) != (err == nil) {
					t.Fatalf("attempts %d status %d err %v; want %d %d %v (%s)", len(rep.Attempts), res.Status, err, c.attempts, c.status, c.errKind, rep)
				}
			})
		})
	}
}

// keyOwnedBy finds an ip_hash key that maps to id.
func keyOwnedBy(t *testing.T, b *Balancer, eps []Endpoint, id string) string {
	for i := 0; ; i++ {
		k := strings.Repeat("k", i%7) + string(rune('a'+i%26))
		ep, tk, err := b.Pick(Request{Key: k}, eps)
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(0, Canceled)
		if ep.ID == id {
			return k
		}
	}
}

func TestDoDeadlineCoversRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{Breaker: BreakerConfig{Disabled: true}, Outlier: OutlierConfig{Disabled: true}})
		defer b.Close()
		start := time.Now()
		_, rep, err := b.Do(context.Background(), CallInfo{Method: "GET", Timeout: 5 * time.Second, MaxAttempts: 10, NoHedge: true}, endpoints(3),
			func(ctx context.Context, ep Endpoint) (Result, error) {
				if err := sleepOrCancel(ctx, 2*time.Second); err != nil {
					return Result{}, err
				}
				return Result{Status: 504}, nil
			})
		el := time.Since(start)
		if !errors.Is(err, ErrDeadline) || el != 5*time.Second {
			t.Fatalf("err %v after %v, want ErrDeadline at 5s", err, el)
		}
		if len(rep.Attempts) != 3 || rep.Attempts[2].Outcome != Timeout {
			t.Fatalf("report %s", rep)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "deadline 5s exceeded after 3 attempts: ep0@node0 server_error 504") || !strings.Contains(msg, "@node1 timeout (") {
			t.Fatalf("message %q", msg)
		}
	})
}

func TestDoPerTryTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{Breaker: BreakerConfig{Disabled: true}, Outlier: OutlierConfig{Disabled: true}})
		defer b.Close()
		eps := endpoints(2)
		res, rep, err := b.Do(context.Background(), CallInfo{Method: "GET", Timeout: 5 * time.Second, PerTryTimeout: time.Second, NoHedge: true}, eps,
			func(ctx context.Context, ep Endpoint) (Result, error) {
				if ep.ID == "ep0" { // hangs until cancelled
					<-ctx.Done()
					return Result{}, ctx.Err()
				}
				return Result{Status: 200}, nil
			})
		if err != nil || res.Status != 200 {
			t.Fatalf("err %v (%s)", err, rep)
		}
		if a := rep.Attempts[0]; a.Outcome != Timeout || a.Latency != time.Second {
			t.Fatalf("first attempt %s, want timeout after 1s", a)
		}
	})
}

func TestDoNoEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{})
		defer b.Close()
		eps := []Endpoint{{ID: "a", Node: "n1", Down: "unhealthy: instance stopped"}}
		_, rep, err := b.Do(context.Background(), CallInfo{Method: "GET"}, eps, func(ctx context.Context, ep Endpoint) (Result, error) {
			t.Fatal("attempt on a down endpoint")
			return Result{}, nil
		})
		var ce *CallError
		if !errors.As(err, &ce) || !errors.Is(err, ErrNoEndpoint) || ce.NoEndpoint == nil || len(rep.Attempts) != 0 {
			t.Fatalf("err %v", err)
		}
		if err.Error() != "no usable endpoint: a@n1 unhealthy: instance stopped" {
			t.Fatalf("message %q", err)
		}
	})
}

func TestDoCallerCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, _, err := b.Do(ctx, CallInfo{Method: "GET"}, endpoints(2), func(ctx context.Context, ep Endpoint) (Result, error) {
			<-ctx.Done()
			return Result{}, ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		b.Close()
	})
}

// A loser that ignores cancellation is waited for by Close and its late
// result released.
func TestDoReleasesLateLoser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{Hedge: HedgeConfig{MinSamples: 1}})
		eps := endpoints(2)
		for i := 0; i < 10; i++ { // learn a p95 of 10ms
			pickDone(t, b, Request{}, eps, 10*time.Millisecond, OK)
		}
		var released atomic.Int32
		res, rep, err := b.Do(context.Background(), CallInfo{Method: "GET"}, eps, func(ctx context.Context, ep Endpoint) (Result, error) {
			if !slices.Contains([]string{"ep0"}, ep.ID) {
				return Result{Status: 200, Value: ep.ID}, nil
			}
			time.Sleep(time.Second) // ignores ctx
			return Result{Status: 200, Release: func() { released.Add(1) }}, nil
		})
		if err != nil || res.Value != "ep1" || len(rep.Attempts) != 2 || !rep.Attempts[1].Hedge || rep.Attempts[0].Outcome != Canceled {
			t.Fatalf("res %+v err %v report %s", res, err, rep)
		}
		b.Close()
		if released.Load() != 1 {
			t.Fatal("late loser result not released")
		}
		if _, _, err := b.Do(context.Background(), CallInfo{}, eps, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Do after Close: %v", err)
		}
	})
}

func TestDoHedgingCutsTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{Outlier: OutlierConfig{Disabled: true}, Breaker: BreakerConfig{Disabled: true}})
		defer b.Close()
		eps := endpoints(30)
		attempt := func(ctx context.Context, ep Endpoint) (Result, error) {
			d := 10 * time.Millisecond
			if ep.ID == "ep7" { // the deliberately slow endpoint
				d = time.Second
			}
			if err := sleepOrCancel(ctx, d); err != nil {
				return Result{}, err
			}
			return Result{Status: 200}, nil
		}
		run := func(n int, noHedge bool) (lats []time.Duration, hedges int) {
			for i := 0; i < n; i++ {
				start := time.Now()
				_, rep, err := b.Do(context.Background(), CallInfo{Method: "GET", NoHedge: noHedge}, eps, attempt)
				if err != nil {
					t.Fatal(err)
				}
				lats = append(lats, time.Since(start))
				for _, a := range rep.Attempts {
					if a.Hedge {
						hedges++
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
			slices.Sort(lats)
			return lats, hedges
		}
		run(60, true) // warm-up: learn the latency distribution
		without, _ := run(300, true)
		with, hedges := run(300, false)
		p := func(l []time.Duration, q float64) time.Duration { return l[int(q*float64(len(l)-1))] }
		t.Logf("without hedging p50 %v p99 %v max %v; with hedging p50 %v p99 %v max %v (%d hedges, hedge delay %v)",
			p(without, .5), p(without, .99), without[len(without)-1], p(with, .5), p(with, .99), with[len(with)-1], hedges, b.HedgeDelay())
		if without[len(without)-1] < time.Second {
			t.Fatal("the slow endpoint never slowed a call down: the test proves nothing")
		}
		if max := with[len(with)-1]; max > 30*time.Millisecond {
			t.Fatalf("with hedging the slowest call took %v", max)
		}
		if hedges < 5 || hedges > 20 {
			t.Fatalf("%d hedges for 300 calls, want about 10 (one per call to the slow endpoint)", hedges)
		}
	})
}

// Under a total outage (every attempt refused) the retry budget bounds
// attempts per request near 1 + Ratio, where unbudgeted retries would make it
// MaxAttempts.
func TestDoBudgetCapsOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{Breaker: BreakerConfig{Disabled: true}, Outlier: OutlierConfig{Disabled: true}})
		defer b.Close()
		eps := endpoints(3)
		var attempts, requests, exhausted atomic.Int64
		var wg sync.WaitGroup
		const clients, per = 50, 250 // 50 clients, one call every 50 ms each: 1000 calls/s for 12.5 s
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					requests.Add(1)
					_, rep, err := b.Do(context.Background(), CallInfo{Method: "GET", MaxAttempts: 3, NoHedge: true}, eps, func(ctx context.Context, ep Endpoint) (Result, error) {
						attempts.Add(1)
						return Result{}, NotReached(errRefused)
					})
					if err == nil {
						t.Error("call succeeded during a total outage")
						return
					}
					if rep.BudgetExhausted {
						exhausted.Add(1)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		ratio := float64(attempts.Load()) / float64(requests.Load())
		t.Logf("total outage: %d requests, %d attempts, %.3f attempts/request, %d calls refused a retry by the budget", requests.Load(), attempts.Load(), ratio, exhausted.Load())
		// Budget: 20 % of requests plus 10/s (100 per 10 s window) = 0.2 + 10/1000.
		if ratio > 1.25 {
			t.Fatalf("%.3f attempts per request: the budget let retries multiply the outage", ratio)
		}
		if ratio < 1.15 {
			t.Fatalf("%.3f attempts per request: the budget was not used", ratio)
		}
	})
}

// The caller's ctx deadline, when shorter, is the call's deadline: a 504
// naming the attempts, not a cancellation.
func TestDoCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{})
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, rep, err := b.Do(ctx, CallInfo{Method: "GET", Timeout: 5 * time.Second, NoHedge: true}, endpoints(2), func(ctx context.Context, ep Endpoint) (Result, error) {
			<-ctx.Done()
			return Result{}, ctx.Err()
		})
		if !errors.Is(err, ErrDeadline) || time.Since(start) != 300*time.Millisecond || rep.Timeout != 300*time.Millisecond {
			t.Fatalf("err %v after %v (timeout %v)", err, time.Since(start), rep.Timeout)
		}
		if !strings.HasPrefix(err.Error(), "deadline 300ms exceeded after 1 attempt: ep0@node0 timeout") {
			t.Fatalf("message %q", err)
		}
		b.Close()
		if s := b.Status("ep0")[0]; s.ConsecutiveFailures != 1 {
			t.Fatalf("the timed-out attempt was not counted against ep0: %+v", s)
		}
	})
}

// Many concurrent calls with random outcomes, hedges and retries, while the
// configuration changes and the state is read: run with -race. At the end
// nothing is in flight.
func TestDoConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events atomic.Int64
		b := newSys(t, Config{Policy: P2CEWMA, Hedge: HedgeConfig{MinSamples: 5}, OnEvent: func(Event) { events.Add(1) }})
		eps := endpoints(5)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					_, _, _ = b.Do(context.Background(), CallInfo{Method: []string{"GET", "POST"}[i%2], Timeout: 200 * time.Millisecond}, eps,
						func(ctx context.Context, ep Endpoint) (Result, error) {
							n := len(ep.ID) + i + g
							if err := sleepOrCancel(ctx, time.Duration(n%7)*10*time.Millisecond); err != nil {
								return Result{}, err
							}
							switch n % 5 {
							case 0:
								return Result{}, NotReached(errRefused)
							case 1:
								return Result{Status: 503}, nil
							}
							return Result{Status: 200}, nil
						})
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_ = b.Status()
				_ = b.Stats()
				if err := b.Reconfigure(Config{Policy: Policies[i%len(Policies)], OnEvent: func(Event) { events.Add(1) }}); err != nil {
					t.Error(err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		wg.Wait()
		b.Close()
		for _, s := range b.Status() {
			if s.InFlight != 0 {
				t.Fatalf("%s: %d in flight after Close", s.ID, s.InFlight)
			}
		}
		if events.Load() == 0 {
			t.Fatal("no breaker or ejection event in a run full of failures")
		}
	})
}

// With an injected clock (not the system clock), the deadline, backoff and
// hedge timers are that clock's: nothing moves until the test advances it.
func TestDoInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		b := newSys(t, Config{Clock: clk, Breaker: BreakerConfig{Disabled: true}, Outlier: OutlierConfig{Disabled: true}})
		type out struct {
			rep Report
			err error
		}
		call := func(attempt func(context.Context, Endpoint) (Result, error)) chan out {
			ch := make(chan out, 1)
			go func() {
				_, rep, err := b.Do(context.Background(), CallInfo{Method: "GET", Timeout: 5 * time.Second, MaxAttempts: 3, NoHedge: true}, endpoints(3), attempt)
				ch <- out{rep, err}
			}()
			return ch
		}
		// Refused everywhere: three attempts separated by backoffs of the
		// injected clock.
		ch := call(func(ctx context.Context, ep Endpoint) (Result, error) { return Result{}, NotReached(errRefused) })
		var o out
		for done := false; !done; {
			synctest.Wait()
			select {
			case o = <-ch:
				done = true
			default:
				clk.Advance(5 * time.Millisecond)
			}
		}
		if !errors.Is(o.err, ErrExhausted) || len(o.rep.Attempts) != 3 || o.rep.Elapsed <= 0 || o.rep.Elapsed > 75*time.Millisecond {
			t.Fatalf("err %v, %d attempts in %v", o.err, len(o.rep.Attempts), o.rep.Elapsed)
		}
		// A hanging endpoint: the deadline fires when the clock passes 5 s.
		ch = call(func(ctx context.Context, ep Endpoint) (Result, error) {
			<-ctx.Done()
			return Result{}, ctx.Err()
		})
		synctest.Wait()
		clk.Advance(4999 * time.Millisecond)
		synctest.Wait()
		select {
		case o = <-ch:
			t.Fatalf("returned before the deadline: %v", o.err)
		default:
		}
		clk.Advance(time.Millisecond)
		o = <-ch
		if !errors.Is(o.err, ErrDeadline) || o.rep.Elapsed != 5*time.Second || o.rep.Attempts[0].Outcome != Timeout {
			t.Fatalf("err %v after %v: %s", o.err, o.rep.Elapsed, o.rep)
		}
		b.Close()
	})
}

// A 5xx answer held while backing off is returned when the deadline leaves no
// room for a retry, and released when the caller goes away.
func TestDoKeptAnswerAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newSys(t, Config{Retry: RetryConfig{BaseBackoff: time.Second, MaxBackoff: time.Second}, Breaker: BreakerConfig{Disabled: true}})
		defer b.Close()
		var released atomic.Int32
		attempt := func(ctx context.Context, ep Endpoint) (Result, error) {
			if err := sleepOrCancel(ctx, 950*time.Millisecond); err != nil {
				return Result{}, err
			}
			return Result{Status: 503, Release: func() { released.Add(1) }}, nil
		}
		res, rep, err := b.Do(context.Background(), CallInfo{Method: "GET", Timeout: time.Second, NoHedge: true}, endpoints(2), attempt)
		if err != nil || res.Status != 503 || len(rep.Attempts) != 1 || released.Load() != 0 {
			t.Fatalf("status %d err %v released %d: %s", res.Status, err, released.Load(), rep)
		}
		// The caller cancels during the backoff: the held 503 is released.
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(960*time.Millisecond, cancel)
		_, rep, err = b.Do(ctx, CallInfo{Method: "GET", Timeout: 10 * time.Second, NoHedge: true}, endpoints(2), attempt)
		if !errors.Is(err, context.Canceled) || released.Load() != 1 {
			t.Fatalf("err %v, released %d (%s)", err, released.Load(), rep)
		}
	})
}
