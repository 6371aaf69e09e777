package balance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Endpoint is one instance of a service as the caller sees it. IDs are stable
// strings chosen by the caller (the registry's endpoint IDs); the Balancer keeps
// its per-endpoint state (in-flight count, latency estimate, breaker, ejection)
// under that ID across calls.
type Endpoint struct {
	// ID identifies the endpoint; it must be unique within one Balancer.
	ID string
	// Node is the node hosting the endpoint (informational, used in errors).
	Node string
	// Zone and Region are the hosting node's locality labels.
	Zone, Region string
	// Local is true when the endpoint runs on the caller's own node.
	Local bool
	// Weight is the endpoint's relative share of traffic; 0 or less means 1.
	// Values above MaxWeight are clamped.
	Weight int
	// RTT is the measured round trip from the caller's node to Node (0:
	// unknown). geo_proximity ranks by it, and p2c_ewma uses it as the first
	// latency estimate of an endpoint it has not measured yet.
	RTT time.Duration
	// Down, when not empty, says why the caller knows the endpoint is not
	// usable ("unhealthy: 3 failed checks", "draining"). Such an endpoint is
	// never picked and the reason is named in NoEndpointError.
	Down string
}

// MaxWeight bounds Endpoint.Weight.
const MaxWeight = 1 << 16

func (e Endpoint) weight() int {
	switch {
	case e.Weight <= 0:
		return 1
	case e.Weight > MaxWeight:
		return MaxWeight
	}
	return e.Weight
}

func (e Endpoint) label() string {
	if e.Node == "" {
		return e.ID
	}
	return e.ID + "@" + e.Node
}

// Request describes one pick.
type Request struct {
	// Key is hashed by ip_hash (the client IP, a session or user ID). An empty
	// key makes ip_hash behave like random.
	Key string
	// Region and Zone are the caller's locality labels (the calling node's).
	Region, Zone string
	// Exclude lists endpoint IDs to avoid when another eligible endpoint
	// exists (Do passes the endpoints already tried by the call, so retries
	// and hedges go elsewhere). It is a preference, never a cause of failure.
	Exclude []string
}

// Outcome is what became of one attempt, as reported to Ticket.Done.
type Outcome uint8

const (
	// OK is any response that is not a server error (2xx, 3xx, 4xx).
	OK Outcome = iota
	// ConnectError means the request never reached the endpoint (dial
	// refused, stream could not be opened, no route): always safe to retry.
	ConnectError
	// Timeout means no answer came in time (the endpoint may have processed
	// the request).
	Timeout
	// ServerError is a 5xx response.
	ServerError
	// Failure is a transport failure after the request was sent (reset,
	// broken stream): the endpoint may have processed it.
	Failure
	// Canceled means the attempt was abandoned by its caller (a hedge that
	// lost the race, a client that went away): no verdict on the endpoint.
	Canceled
)

var outcomeNames = [...]string{"ok", "connect_error", "timeout", "server_error", "failure", "canceled"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// IsFailure reports whether the outcome counts against the endpoint (breaker,
// outlier ejection): ConnectError, Timeout, ServerError and Failure.
func (o Outcome) IsFailure() bool {
	return o == ConnectError || o == Timeout || o == ServerError || o == Failure
}

// reached reports whether the endpoint may have seen the request.
func (o Outcome) reached() bool { return o != ConnectError }

// ErrNotReached marks an error as "the request never reached the endpoint";
// wrap transport errors with NotReached so that Classify returns ConnectError.
var ErrNotReached = errors.New("request did not reach the endpoint")

type notReached struct{ err error }

func (e notReached) Error() string   { return e.err.Error() }
func (e notReached) Unwrap() []error { return []error{e.err, ErrNotReached} }

// NotReached wraps err (dial refused, stream open failed) so that Classify
// reports ConnectError and Do retries it even for non-idempotent calls.
func NotReached(err error) error {
	if err == nil {
		return nil
	}
	return notReached{err}
}

// OutcomeError attaches an explicit Outcome to an error returned by an attempt.
type OutcomeError struct {
	Outcome Outcome
	Err     error
}

func (e *OutcomeError) Error() string { return e.Err.Error() }
func (e *OutcomeError) Unwrap() error { return e.Err }

// Classify maps an attempt's error to an Outcome: an *OutcomeError gives its
// own; ErrNotReached gives ConnectError; context.DeadlineExceeded and net
// timeouts give Timeout; context.Canceled gives Canceled; anything else is a
// Failure (the request may have been processed). A nil error is OK.
func Classify(err error) Outcome {
	if err == nil {
		return OK
	}
	var oe *OutcomeError
	if errors.As(err, &oe) {
		return oe.Outcome
	}
	if errors.Is(err, ErrNotReached) {
		return ConnectError
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	return Failure
}

// Clock is the source of time for a Balancer: every timestamp, timeout, backoff
// sleep and hedge delay goes through it, so tests can run in virtual time.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock returns the real clock (time.Now, time.NewTimer).
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) NewTimer(d time.Duration) Timer {
	return sysTimer{time.NewTimer(d)}
}

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }
