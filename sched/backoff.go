package sched

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Backoff computes restart delays for a failing instance: exponential from Base, capped at
// Max, with "equal jitter" (half the delay fixed, half uniform) so instances that failed
// together do not restart in lockstep.
type Backoff struct {
	Base time.Duration // delay after the first failure; default 1s
	Max  time.Duration // ceiling; default 5m
	// AvoidAfter is the number of consecutive failures on one node after which a reschedule
	// lists that node in Request.Avoid; default 3.
	AvoidAfter int
}

// DefaultBackoff returns Base 1s (a crash loop costs little), Max 5m (a broken instance is
// retried a dozen times an hour), AvoidAfter 3 (a node-specific fault is assumed after three
// failures in a row there).
func DefaultBackoff() Backoff {
	return Backoff{Base: time.Second, Max: 5 * time.Minute, AvoidAfter: 3}
}

// Validate reports whether the values are usable (errors wrap ErrInvalid).
func (b Backoff) Validate() error {
	if b.Base <= 0 || b.Max < b.Base || b.AvoidAfter < 1 {
		return invalidf("backoff needs 0 < Base <= Max and AvoidAfter >= 1 (got %v, %v, %d)", b.Base, b.Max, b.AvoidAfter)
	}
	return nil
}

// Delay returns the wait before the restart that follows the given number of consecutive
// failures (1 for the first): between d/2 and d where d = min(Max, Base*2^(failures-1)).
// It returns 0 for failures < 1.
func (b Backoff) Delay(failures int, rng *rand.Rand) time.Duration {
	if failures < 1 {
		return 0
	}
	d := b.Base
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + time.Duration(rng.Int64N(int64(d-half)+1))
}

// AvoidNodes returns, sorted, the nodes on which an instance failed at least AvoidAfter
// times in a row, for Request.Avoid.
func (b Backoff) AvoidNodes(consecutiveFailures map[string]int) []string {
	var out []string
	for n, f := range consecutiveFailures {
		if f >= b.AvoidAfter {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
