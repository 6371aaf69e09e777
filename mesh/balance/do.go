package balance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// IsIdempotent reports whether an HTTP method is idempotent (RFC 9110): GET,
// HEAD, OPTIONS, PUT, DELETE and TRACE (case-insensitive).
func IsIdempotent(method string) bool {
	switch strings.ToUpper(method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// CallInfo describes one call for Do.
type CallInfo struct {
	// Method is the HTTP method ("" for raw TCP or other protocols).
	Method string
	// Idempotent marks the call safe to retry and hedge whatever its method
	// (e.g. a POST with an idempotency key, a gRPC method known to be
	// idempotent).
	Idempotent bool
	// Key, Region and Zone are passed to Pick (see Request).
	Key          string
	Region, Zone string
	// Timeout is the call's deadline, covering every attempt and backoff.
	// 0: Config.Retry.Timeout. A deadline on Do's ctx also applies.
	Timeout time.Duration
	// MaxAttempts bounds the attempts (first try, retries and hedges).
	// 0: Config.Retry.MaxAttempts; 1 disables retries and hedging.
	MaxAttempts int
	// PerTryTimeout, when above 0, cancels one attempt after that long (its
	// outcome is then Timeout and the call may retry). 0: only the call's
	// deadline applies.
	PerTryTimeout time.Duration
	// NoHedge disables hedging for this call.
	NoHedge bool
}

// Result is what an attempt produced. Do hands the winning attempt's Result
// back untouched.
type Result struct {
	// Status is the response status (HTTP status code; 0 if none). A status
	// of 500 or more makes the outcome ServerError unless Outcome says
	// otherwise.
	Status int
	// Outcome overrides the classification when not OK.
	Outcome Outcome
	// Value is the response itself (e.g. an *http.Response).
	Value any
	// Release, when set, is called by Do for every Result it discards (a
	// retried 5xx, a hedge that lost), e.g. to close a response body.
	Release func()
}

func (r Result) release() {
	if r.Release != nil {
		r.Release()
	}
}

// Attempt is one attempt of a call, in the order they started.
type Attempt struct {
	Endpoint Endpoint
	Outcome  Outcome
	Status   int
	Latency  time.Duration
	// Start is when the attempt started, relative to the call's start.
	Start time.Duration
	Err   error
	// Hedge: started as a hedge while another attempt was in flight.
	// Retry: started after a failed attempt. Won: its result was returned.
	Hedge, Retry, Won bool
}

func (a Attempt) String() string {
	s := fmt.Sprintf("%s %s", a.Endpoint.label(), a.Outcome)
	if a.Status != 0 {
		s += fmt.Sprintf(" %d", a.Status)
	}
	if a.Err != nil && a.Outcome != Canceled {
		s += ": " + a.Err.Error()
	}
	s += fmt.Sprintf(" (%v", a.Latency.Round(time.Microsecond))
	if a.Hedge {
		s += ", hedge"
	}
	return s + ")"
}

// Report lists the attempts of one call.
type Report struct {
	Attempts []Attempt
	// Elapsed is the call's duration; Timeout the deadline it ran under.
	Elapsed, Timeout time.Duration
	// HedgeDelay is the hedge delay in force (0: no hedging for this call).
	HedgeDelay time.Duration
	// BudgetExhausted: a retry or hedge was refused by the retry budget.
	BudgetExhausted bool
}

// String is "ep1@node-a timeout (2s), ep2@node-b connect_error: ... (1ms)".
func (r Report) String() string {
	parts := make([]string, len(r.Attempts))
	for i, a := range r.Attempts {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

// Errors of Do (besides ErrNoEndpoint and ErrClosed); test with errors.Is.
var (
	// ErrDeadline: the call's deadline passed before an attempt succeeded.
	ErrDeadline = errors.New("deadline exceeded")
	// ErrExhausted: every allowed attempt failed without a response (or
	// the failure was not retryable).
	ErrExhausted = errors.New("every attempt failed")
)

var (
	errPerTry    = errors.New("per-try timeout")
	errHedgeLost = errors.New("another attempt won")
	errAbandoned = errors.New("call returned")
)

// CallError is the error of Do. Kind is ErrDeadline, ErrExhausted,
// ErrNoEndpoint, ErrClosed or the ctx's error; errors.Is works with each.
type CallError struct {
	Kind   error
	Report Report
	// NoEndpoint names the reason per endpoint when a pick found none usable.
	NoEndpoint *NoEndpointError
	// Last is the error of the last failed attempt.
	Last error
}

func (e *CallError) Error() string {
	n := len(e.Report.Attempts)
	var b strings.Builder
	switch {
	case e.Kind == ErrDeadline:
		fmt.Fprintf(&b, "deadline %v exceeded after %d attempt%s", e.Report.Timeout, n, plural(n))
	case e.Kind == ErrNoEndpoint && n == 0 && e.NoEndpoint != nil:
		return e.NoEndpoint.Error()
	case e.Kind == ErrExhausted:
		if n == 1 {
			b.WriteString("the attempt failed")
		} else {
			fmt.Fprintf(&b, "all %d attempts failed", n)
		}
	default:
		fmt.Fprintf(&b, "%v after %d attempt%s", e.Kind, n, plural(n))
	}
	if n > 0 {
		b.WriteString(": ")
		b.WriteString(e.Report.String())
	}
	if e.NoEndpoint != nil {
		b.WriteString("; then ")
		b.WriteString(e.NoEndpoint.Error())
	}
	if e.Report.BudgetExhausted {
		b.WriteString(" (retry budget exhausted)")
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (e *CallError) Unwrap() []error {
	errs := []error{e.Kind}
	if e.NoEndpoint != nil {
		errs = append(errs, e.NoEndpoint)
	}
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	return errs
}

type attemptResult struct {
	idx int
	res Result
	err error
	o   Outcome
	lat time.Duration
}

// run collects attempt results; after abandon, late results are released by
// the goroutine that produced them.
type run struct {
	mu        sync.Mutex
	abandoned bool
	ch        chan attemptResult
}

func (r *run) deliver(ar attemptResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.abandoned {
		ar.res.release()
		return
	}
	r.ch <- ar // buffered for every attempt: never blocks
}

func (r *run) abandon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.abandoned = true
	for {
		select {
		case ar := <-r.ch:
			ar.res.release()
		default:
			return
		}
	}
}

func (b *Balancer) backoff(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cfg.Retry.BaseBackoff
	for i := 1; i < n && c < b.cfg.Retry.MaxBackoff; i++ {
		c *= 2
	}
	c = min(c, b.cfg.Retry.MaxBackoff)
	if c <= 0 {
		return 0
	}
	return time.Duration(b.rng.Int64N(int64(c)))
}

// Do runs one call: pick an endpoint, run attempt on it, and on a retryable
// failure back off and retry on another endpoint, within the call's deadline
// and the retry budget; idempotent calls also get a hedge on a second
// endpoint once the first attempt has run longer than the hedge delay (the
// service's observed p95). The first successful attempt wins, the others are
// cancelled and their results released.
//
// Retryable: a ConnectError always (the endpoint never saw the request);
// Timeout, ServerError and Failure only for idempotent calls. A response
// that is not retried (4xx, or a 5xx when no retry is possible: attempts,
// budget or deadline exhausted) is returned with a nil error; the error is a
// *CallError when no attempt produced a response, when the deadline passed
// or when no endpoint was usable.
//
// attempt must honour ctx: it is cancelled when the deadline passes, when
// another attempt won, or at the per-try timeout. Attempts still running when
// Do returns are waited for by Close.
func (b *Balancer) Do(ctx context.Context, call CallInfo, candidates []Endpoint, attempt func(context.Context, Endpoint) (Result, error)) (Result, Report, error) {
	var rep Report
	if b.closed.Load() {
		return Result{}, rep, &CallError{Kind: ErrClosed, Report: rep}
	}
	b.mu.Lock()
	clock := b.clock
	start := clock.Now()
	timeout := call.Timeout
	if timeout <= 0 {
		timeout = b.cfg.Retry.Timeout
	}
	maxAttempts := call.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = b.cfg.Retry.MaxAttempts
	}
	idem := call.Idempotent || IsIdempotent(call.Method)
	if idem && !call.NoHedge && maxAttempts > 1 {
		rep.HedgeDelay = b.hedgeDelayLocked(start)
	}
	b.budget.request(start)
	b.mu.Unlock()
	_, realClock := clock.(systemClock)
	if d, ok := ctx.Deadline(); ok && realClock && d.Sub(start) < timeout {
		timeout = max(d.Sub(start), 0) // the caller's own deadline is shorter
	}
	rep.Timeout = timeout
	if err := ctx.Err(); err != nil {
		return Result{}, rep, &CallError{Kind: ctxKind(err), Report: rep, Last: err}
	}

	// callCtx is the parent of every attempt's ctx. With the system clock it
	// carries the deadline itself (attempts see it in ctx.Deadline); with
	// another clock a timer of that clock signals it on deadlineC.
	var (
		callCtx    context.Context
		cancelCall func()
		deadlineC  <-chan time.Time
	)
	if realClock {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithDeadlineCause(ctx, start.Add(timeout), ErrDeadline)
		cancelCall = cancel
	} else {
		c, cancel := context.WithCancelCause(ctx)
		callCtx, cancelCall = c, func() { cancel(errAbandoned) }
		t := clock.NewTimer(timeout)
		defer t.Stop()
		deadlineC = t.C()
	}
	defer cancelCall()
	callDone := callCtx.Done()
	// endKind says why callCtx ended: ErrDeadline (the call's or the
	// caller's deadline) or the caller's cancellation.
	endKind := func() error {
		if errors.Is(context.Cause(callCtx), ErrDeadline) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrDeadline
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return context.Canceled
	}

	r := &run{ch: make(chan attemptResult, maxAttempts)}
	defer r.abandon()
	cancels := make([]context.CancelCauseFunc, 0, maxAttempts)
	exclude := make([]string, 0, maxAttempts)
	inflight, retries := 0, 0
	var hedgeTimer Timer
	var hedgeC <-chan time.Time
	stopHedge := func() {
		if hedgeTimer != nil {
			hedgeTimer.Stop()
			hedgeTimer, hedgeC = nil, nil
		}
	}
	defer stopHedge()
	finish := func() { rep.Elapsed = clock.Now().Sub(start) }
	// abandonInflight marks attempts still running as o and cancels them.
	abandonInflight := func(o Outcome, cause error) {
		now := clock.Now().Sub(start)
		for i := range rep.Attempts {
			a := &rep.Attempts[i]
			if a.Latency < 0 {
				a.Outcome, a.Latency = o, now-a.Start
				cancels[i](cause)
			}
		}
	}

	launch := func(hedge, retry bool) error {
		ep, tk, err := b.pick(Request{Key: call.Key, Region: call.Region, Zone: call.Zone, Exclude: exclude}, candidates, true)
		if err != nil {
			return err
		}
		if hedge {
			// A hedge only helps on another endpoint, and the budget pays for it.
			refused := slices.Contains(exclude, ep.ID)
			if !refused && !b.TryRetry() {
				refused, rep.BudgetExhausted = true, true
			}
			if refused {
				tk.Done(0, Canceled)
				b.wg.Done()
				return ErrNoEndpoint
			}
		}
		exclude = append(exclude, ep.ID)
		idx := len(rep.Attempts)
		rep.Attempts = append(rep.Attempts, Attempt{Endpoint: ep, Start: clock.Now().Sub(start), Latency: -1, Hedge: hedge, Retry: retry})
		actx, acancel := context.WithCancelCause(callCtx)
		cancels = append(cancels, acancel)
		inflight++
		go b.runAttempt(r, idx, actx, acancel, ep, tk, attempt, call.PerTryTimeout, clock)
		if !hedge && inflight == 1 && rep.HedgeDelay > 0 && len(rep.Attempts) < maxAttempts {
			stopHedge()
			hedgeTimer = clock.NewTimer(rep.HedgeDelay)
			hedgeC = hedgeTimer.C()
		}
		return nil
	}

	if err := launch(false, false); err != nil {
		finish()
		ce := &CallError{Kind: err, Report: rep}
		var ne *NoEndpointError
		if errors.As(err, &ne) {
			ce.Kind, ce.NoEndpoint = ErrNoEndpoint, ne
		}
		return Result{}, rep, ce
	}
	var kept *attemptResult // the latest 5xx response, returned if nothing better comes
	// fail ends the call with an error, releasing a kept response.
	fail := func(kind, last error, noEp *NoEndpointError) (Result, Report, error) {
		if kept != nil {
			kept.res.release()
			kept = nil
		}
		finish()
		return Result{}, rep, &CallError{Kind: kind, Report: rep, Last: last, NoEndpoint: noEp}
	}
	// answer ends the call with the kept response when there is one (an
	// answer of the service beats a gateway error), else fails with kind.
	answer := func(kind, last error, noEp *NoEndpointError) (Result, Report, error) {
		if kept != nil {
			finish()
			return kept.res, rep, nil
		}
		return fail(kind, last, noEp)
	}
	// ended handles callCtx's end: the deadline or the caller's cancellation.
	ended := func(last error) (Result, Report, error) {
		kind, o := endKind(), Canceled
		if kind == ErrDeadline {
			o = Timeout
		}
		abandonInflight(o, kind)
		if kind == ErrDeadline {
			return answer(kind, last, nil)
		}
		return fail(kind, last, nil)
	}
	for {
		select {
		case ar := <-r.ch:
			inflight--
			a := &rep.Attempts[ar.idx]
			a.Outcome, a.Status, a.Latency, a.Err = ar.o, ar.res.Status, ar.lat, ar.err
			if ar.err == nil && !ar.o.IsFailure() {
				a.Won = true
				abandonInflight(Canceled, errHedgeLost)
				if kept != nil {
					kept.res.release()
				}
				finish()
				return ar.res, rep, nil
			}
			if ar.err == nil { // a 5xx response: the latest one is kept
				if kept != nil {
					kept.res.release()
				}
				kept = &ar
			}
			if inflight > 0 {
				continue
			}
			stopHedge()
			if callCtx.Err() != nil {
				return ended(ar.err)
			}
			retryable := ar.o == ConnectError || (idem && (ar.o == Timeout || ar.o == ServerError || ar.o == Failure))
			if !retryable || len(rep.Attempts) >= maxAttempts {
				return answer(ErrExhausted, ar.err, nil)
			}
			retries++
			wait := b.backoff(retries)
			if clock.Now().Add(wait).Sub(start) >= timeout {
				return answer(ErrDeadline, ar.err, nil)
			}
			if !b.TryRetry() {
				rep.BudgetExhausted = true
				return answer(ErrExhausted, ar.err, nil)
			}
			if wait > 0 {
				t := clock.NewTimer(wait)
				select {
				case <-t.C():
				case <-deadlineC:
					t.Stop()
					return answer(ErrDeadline, ar.err, nil)
				case <-callDone:
					t.Stop()
					return ended(ar.err)
				}
			}
			if err := launch(false, true); err != nil {
				var ne *NoEndpointError
				errors.As(err, &ne)
				return answer(ErrExhausted, ar.err, ne)
			}
			if kept != nil {
				kept.res.release()
				kept = nil
			}
		case <-hedgeC:
			hedgeTimer, hedgeC = nil, nil
			if inflight == 1 && len(rep.Attempts) < maxAttempts {
				_ = launch(true, false) // no other usable endpoint or no budget: no hedge
			}
		case <-deadlineC:
			abandonInflight(Timeout, ErrDeadline)
			return answer(ErrDeadline, nil, nil)
		case <-callDone:
			return ended(ctx.Err())
		}
	}
}

// ctxKind maps the caller's ctx error to a CallError kind: a passed deadline
// is ErrDeadline (504) like the call's own.
func ctxKind(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrDeadline
	}
	return err
}

func (b *Balancer) runAttempt(r *run, idx int, ctx context.Context, cancel context.CancelCauseFunc, ep Endpoint, tk Ticket,
	attempt func(context.Context, Endpoint) (Result, error), perTry time.Duration, clock Clock) {
	defer b.wg.Done()
	if perTry > 0 {
		t := clock.NewTimer(perTry)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-t.C():
				cancel(errPerTry)
			case <-stop:
				t.Stop()
			}
		}()
		defer wg.Wait()
		defer close(stop)
	}
	t0 := clock.Now()
	res, err := attempt(ctx, ep)
	lat := clock.Now().Sub(t0)
	o := res.Outcome
	if err != nil {
		o = Classify(err)
		if ctx.Err() != nil && o != ConnectError {
			switch cause := context.Cause(ctx); {
			case errors.Is(cause, ErrDeadline), errors.Is(cause, errPerTry), errors.Is(cause, context.DeadlineExceeded):
				o = Timeout
			default:
				o = Canceled
			}
		}
	} else if o == OK && res.Status >= 500 {
		o = ServerError
	}
	tk.Done(lat, o)
	cancel(nil)
	r.deliver(attemptResult{idx: idx, res: res, err: err, o: o, lat: lat})
}
