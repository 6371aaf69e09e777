package balance

import (
	"sort"
	"time"
)

// EndpointStatus is the Balancer's view of one endpoint, for errors, the CLI
// and metrics.
type EndpointStatus struct {
	ID string
	// Breaker is the breaker state; BreakerUntil is when an open breaker
	// half-opens; BreakerOpens counts how often it opened.
	Breaker      BreakerState
	BreakerSince time.Time
	BreakerUntil time.Time
	BreakerOpens int
	// ConsecutiveFailures is the current failure streak (breaker count while
	// closed).
	ConsecutiveFailures int
	// Ejected is true during an outlier ejection that ends at EjectedUntil;
	// Ejections is the current ejection multiplier.
	Ejected      bool
	EjectedUntil time.Time
	Ejections    int
	InFlight     int
	// Latency is the current p2c_ewma estimate (0: not measured).
	Latency time.Duration
}

// Status returns the state of the endpoints the Balancer knows, sorted by ID;
// with ids, only those (unknown ones are reported closed and idle).
func (b *Balancer) Status(ids ...string) []EndpointStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	one := func(id string) EndpointStatus {
		st := b.eps[id]
		if st == nil {
			return EndpointStatus{ID: id}
		}
		s := EndpointStatus{
			ID: id, Breaker: st.br.state, BreakerSince: st.br.since, BreakerOpens: st.br.opens,
			ConsecutiveFailures: st.br.consec, Ejections: st.out.times, InFlight: st.inflight,
		}
		if b.cfg.Breaker.Disabled {
			s.Breaker = Closed
		}
		if st.br.state == Open {
			s.BreakerUntil = st.br.retryAt
		}
		if st.out.ejected && now.Before(st.out.until) {
			s.Ejected, s.EjectedUntil = true, st.out.until
		}
		if st.measured {
			s.Latency = time.Duration(b.latency(st, nil, now))
		}
		return s
	}
	var out []EndpointStatus
	if len(ids) > 0 {
		for _, id := range ids {
			out = append(out, one(id))
		}
		return out
	}
	for id := range b.eps {
		out = append(out, one(id))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats is the service-level state of a Balancer.
type Stats struct {
	// Requests and Retries counted in the budget window (retries include
	// hedges); RetryAllowance is the number of retries still allowed now.
	Requests, Retries int64
	RetryAllowance    float64
	// Samples is the number of latencies behind LatencyQuantile (the
	// Hedge.Quantile of attempt latencies); HedgeDelay is the delay Do uses
	// now (0: hedging inactive, too few samples).
	Samples         uint64
	LatencyQuantile time.Duration
	HedgeDelay      time.Duration
}

// Stats returns the budget and latency-quantile state.
func (b *Balancer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	var s Stats
	s.Requests, s.Retries = b.budget.r.sums(now)
	s.RetryAllowance = max(b.budget.allowance(now), 0)
	s.Samples = b.lat.count(now)
	s.LatencyQuantile = b.lat.value(now, b.cfg.Hedge.Quantile)
	s.HedgeDelay = b.hedgeDelayLocked(now)
	return s
}

func (b *Balancer) hedgeDelayLocked(now time.Time) time.Duration {
	if b.cfg.Hedge.Disabled || b.lat.count(now) < uint64(b.cfg.Hedge.MinSamples) {
		return 0
	}
	return max(b.lat.value(now, b.cfg.Hedge.Quantile), b.cfg.Hedge.MinDelay)
}

// RecordRequest counts one request (a first attempt) in the retry budget.
// Do calls it; callers that retry on their own call it with TryRetry.
func (b *Balancer) RecordRequest() {
	b.mu.Lock()
	b.budget.request(b.clock.Now())
	b.mu.Unlock()
}

// TryRetry withdraws one retry (or hedge) from the budget and reports whether
// it was allowed.
func (b *Balancer) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.budget.withdraw(b.clock.Now())
}

// HedgeDelay is the delay after which Do sends a hedge now (0: hedging is
// disabled or has too few samples).
func (b *Balancer) HedgeDelay() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hedgeDelayLocked(b.clock.Now())
}
