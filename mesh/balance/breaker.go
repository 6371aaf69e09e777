package balance

import "time"

// BreakerState is the state of one endpoint's circuit breaker.
type BreakerState uint8

const (
	// Closed lets every request through and counts failures.
	Closed BreakerState = iota
	// Open rejects every request until the breaker's timeout passed.
	Open
	// HalfOpen admits HalfOpenRequests probes: it closes when they all
	// succeeded and reopens on the first failure.
	HalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "unknown"
}

// breaker is the pure state machine; the Balancer calls it under its lock.
type breaker struct {
	state     BreakerState
	gen       uint32 // bumped on every transition; outcomes of older generations are ignored
	consec    int    // consecutive failures while closed
	since     time.Time
	retryAt   time.Time // open: when it half-opens
	admitted  int       // half-open: probes admitted
	successes int       // half-open: probes that succeeded
	rate      ring      // closed: (requests, failures) for FailureRate
	opens     int       // times opened, for status
}

// usable reports whether a request could be admitted at now, moving an open
// breaker whose timeout passed to half-open. It does not admit anything.
func (br *breaker) usable(now time.Time, cfg *BreakerConfig) (ok bool, changed bool) {
	if cfg.Disabled {
		return true, false
	}
	switch br.state {
	case Open:
		if now.Before(br.retryAt) {
			return false, false
		}
		br.transition(HalfOpen, now)
		return true, true
	case HalfOpen:
		return br.admitted < cfg.HalfOpenRequests, false
	}
	return true, false
}

// admit takes the request (after usable said yes); probe is true when it is a
// half-open probe.
func (br *breaker) admit(cfg *BreakerConfig) (gen uint32, probe bool) {
	if !cfg.Disabled && br.state == HalfOpen {
		br.admitted++
		return br.gen, true
	}
	return br.gen, false
}

// record feeds the outcome of a request admitted in generation gen and
// reports whether the state changed.
func (br *breaker) record(now time.Time, gen uint32, probe bool, o Outcome, cfg *BreakerConfig) bool {
	if cfg.Disabled || gen != br.gen {
		return false
	}
	switch br.state {
	case Closed:
		if o == Canceled {
			return false
		}
		if o.IsFailure() {
			br.consec++
			br.rate.add(now, 1, 1)
		} else {
			br.consec = 0
			br.rate.add(now, 1, 0)
		}
		if br.consec >= cfg.FailureThreshold {
			br.trip(now, cfg)
			return true
		}
		if cfg.FailureRate > 0 && o.IsFailure() {
			n, f := br.rate.sums(now)
			if n >= int64(cfg.MinRequests) && float64(f) >= cfg.FailureRate*float64(n) {
				br.trip(now, cfg)
				return true
			}
		}
	case HalfOpen:
		if !probe {
			return false
		}
		switch {
		case o == Canceled:
			br.admitted-- // the slot is free again: no verdict
		case o.IsFailure():
			br.trip(now, cfg)
			return true
		default:
			br.successes++
			if br.successes >= cfg.HalfOpenRequests {
				br.transition(Closed, now)
				return true
			}
		}
	}
	return false
}

func (br *breaker) trip(now time.Time, cfg *BreakerConfig) {
	br.transition(Open, now)
	br.retryAt = now.Add(cfg.Timeout)
	br.opens++
}

func (br *breaker) transition(to BreakerState, now time.Time) {
	br.state = to
	br.gen++
	br.since = now
	br.consec, br.admitted, br.successes = 0, 0, 0
	br.rate.reset()
}
