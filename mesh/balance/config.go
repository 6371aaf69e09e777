package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Policy names a load-balancing algorithm.
type Policy string

// The policies. See the package documentation for their semantics.
const (
	RoundRobin   Policy = "round_robin"
	LeastConn    Policy = "least_conn"
	Random       Policy = "random"
	IPHash       Policy = "ip_hash"
	P2CEWMA      Policy = "p2c_ewma"
	GeoProximity Policy = "geo_proximity"
)

// Policies lists every policy, in documentation order.
var Policies = []Policy{RoundRobin, LeastConn, Random, IPHash, P2CEWMA, GeoProximity}

// ParsePolicy accepts a policy name (case-insensitive, "-" or "_"); the empty
// string is round_robin. The error lists the valid names.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return RoundRobin, nil
	}
	p := Policy(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_"))
	for _, q := range Policies {
		if p == q {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, q := range Policies {
		names[i] = string(q)
	}
	return "", fmt.Errorf("%w: unknown load balancer %q (want one of %s)", ErrInvalidConfig, s, strings.Join(names, ", "))
}

// ErrInvalidConfig is wrapped by every error from Config.Validate and
// ParsePolicy.
var ErrInvalidConfig = errors.New("balance: invalid config")

// Config configures a Balancer. The zero value of every field means its
// documented default; Validate reports the first invalid field.
type Config struct {
	// Policy is the load-balancing algorithm. Default round_robin.
	Policy Policy
	// Clock is the source of time. Default SystemClock().
	Clock Clock
	// Rand is the source of every random choice (random, p2c_ewma, tie
	// breaks, backoff jitter). It is only used under the Balancer's lock.
	// Default: a generator seeded from the runtime's random source.
	Rand *rand.Rand
	// DisableLocality turns off the locality preference: by default every
	// policy only considers the best locality tier that has a usable
	// endpoint: same node, then same zone, then same region, then any.
	DisableLocality bool
	// DecayTime is p2c_ewma's time constant: a latency observation weighs
	// exp(-elapsed/DecayTime) later, and an idle endpoint's estimate decays
	// toward zero with it (so it gets probed again). Default 10 s (Finagle
	// and Linkerd).
	DecayTime time.Duration
	// DefaultLatency is the latency assumed for an endpoint not measured yet
	// (when Endpoint.RTT is unknown). Default 30 ms (Linkerd's default RTT).
	DefaultLatency time.Duration

	Breaker BreakerConfig
	Outlier OutlierConfig
	Budget  BudgetConfig
	Retry   RetryConfig
	Hedge   HedgeConfig

	// OnEvent, when set, is called for every breaker transition and every
	// ejection, after the Balancer's lock is released (for logs and metrics).
	OnEvent func(Event)
}

// BreakerConfig configures the circuit breaker kept per endpoint.
type BreakerConfig struct {
	// Disabled turns breakers off (every endpoint stays closed).
	Disabled bool
	// FailureThreshold is the number of consecutive failures (connect error,
	// timeout, 5xx, transport failure) that opens the breaker. Default 5
	// (seed: failure_threshold).
	FailureThreshold int
	// Timeout is how long the breaker stays open before it half-opens.
	// Default 30 s (seed: timeout).
	Timeout time.Duration
	// HalfOpenRequests is the number of probe requests admitted while half
	// open; the breaker closes once that many succeeded and reopens on the
	// first failure. Default 3 (seed: half_open_requests).
	HalfOpenRequests int
	// FailureRate, when above 0, also opens the breaker when at least
	// MinRequests finished within Window and this fraction of them failed
	// (0 < FailureRate <= 1). Default 0 (off).
	FailureRate float64
	// Window is the sliding window of FailureRate. Default 10 s.
	Window time.Duration
	// MinRequests is the minimum number of requests within Window before
	// FailureRate is applied. Default 20.
	MinRequests int
}

// OutlierConfig configures outlier ejection (Envoy style).
type OutlierConfig struct {
	// Disabled turns ejection off.
	Disabled bool
	// Consecutive is the number of consecutive failures (5xx, connect
	// error, timeout, transport failure) that ejects an endpoint. Default 5.
	Consecutive int
	// BaseEjectionTime is the ejection time of a first ejection; the n-th
	// ejection lasts n times as long (the count decreases by one for every
	// BaseEjectionTime spent without ejection). Default 30 s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps one ejection. Default 300 s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the ejected share of a service's endpoints
	// (of the candidates of the latest Pick); at least one endpoint can be
	// ejected when there are two or more. Default 10 (Envoy's default); 0
	// means the default, Disabled turns ejection off.
	MaxEjectionPercent int
}

// BudgetConfig configures the retry budget (Linkerd and Envoy style): over
// the sliding Window, retries and hedges may not exceed
// MinPerSecond*Window + Ratio*requests.
type BudgetConfig struct {
	// Ratio is the share of requests that may be retried. Default 0.2 (0
	// means the default; a tiny value such as 1e-9 leaves only MinPerSecond).
	Ratio float64
	// MinPerSecond is the retry rate always allowed, so that a service with
	// little traffic can still retry. Default 10 (0 means the default).
	MinPerSecond float64
	// Window is the sliding window. Default 10 s.
	Window time.Duration
}

// RetryConfig configures Do.
type RetryConfig struct {
	// MaxAttempts is the default total number of attempts of a call
	// (first try, retries and hedges). Default 3. CallInfo.MaxAttempts
	// overrides it per call.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the exponential backoff with full
	// jitter: before retry n (1-based) Do sleeps a uniform random time in
	// [0, min(MaxBackoff, BaseBackoff*2^(n-1))). Defaults 25 ms and 250 ms
	// (Envoy's).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Timeout is the default deadline of a call, covering every attempt
	// and backoff. Default 5 s (seed: timeout_ms 5000). CallInfo.Timeout
	// overrides it per call.
	Timeout time.Duration
}

// HedgeConfig configures request hedging in Do.
type HedgeConfig struct {
	// Disabled turns hedging off.
	Disabled bool
	// Quantile of the service's observed attempt latency after which a
	// hedge is sent. Default 0.95.
	Quantile float64
	// MinSamples is the number of latencies observed within Window before
	// hedging starts. Default 20.
	MinSamples int
	// MinDelay is the shortest hedge delay. Default 1 ms.
	MinDelay time.Duration
	// Window is the time over which latencies are kept: the estimate covers
	// between Window and 2*Window of history. Default 30 s.
	Window time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if p, err := ParsePolicy(string(c.Policy)); err == nil {
		c.Policy = p // "" is round_robin; "Least-Conn" is least_conn
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	def(&c.DecayTime, 10*time.Second)
	def(&c.DefaultLatency, 30*time.Millisecond)
	defi(&c.Breaker.FailureThreshold, 5)
	def(&c.Breaker.Timeout, 30*time.Second)
	defi(&c.Breaker.HalfOpenRequests, 3)
	def(&c.Breaker.Window, 10*time.Second)
	defi(&c.Breaker.MinRequests, 20)
	defi(&c.Outlier.Consecutive, 5)
	def(&c.Outlier.BaseEjectionTime, 30*time.Second)
	def(&c.Outlier.MaxEjectionTime, 300*time.Second)
	defi(&c.Outlier.MaxEjectionPercent, 10)
	if c.Budget.Ratio == 0 {
		c.Budget.Ratio = 0.2
	}
	if c.Budget.MinPerSecond == 0 {
		c.Budget.MinPerSecond = 10
	}
	def(&c.Budget.Window, 10*time.Second)
	defi(&c.Retry.MaxAttempts, 3)
	def(&c.Retry.BaseBackoff, 25*time.Millisecond)
	def(&c.Retry.MaxBackoff, 250*time.Millisecond)
	def(&c.Retry.Timeout, 5*time.Second)
	if c.Hedge.Quantile == 0 {
		c.Hedge.Quantile = 0.95
	}
	defi(&c.Hedge.MinSamples, 20)
	def(&c.Hedge.MinDelay, time.Millisecond)
	def(&c.Hedge.Window, 30*time.Second)
	return c
}

// Validate checks every field (zero values stand for their defaults) and
// returns an error wrapping ErrInvalidConfig that names the field.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if _, err := ParsePolicy(string(c.Policy)); err != nil {
		return err
	}
	c = c.withDefaults()
	switch {
	case c.DecayTime < 0:
		return bad("DecayTime %v must be positive", c.DecayTime)
	case c.DefaultLatency < 0:
		return bad("DefaultLatency %v must be positive", c.DefaultLatency)
	case c.Breaker.FailureThreshold < 1:
		return bad("Breaker.FailureThreshold (failure_threshold) %d must be at least 1", c.Breaker.FailureThreshold)
	case c.Breaker.Timeout < 0:
		return bad("Breaker.Timeout (timeout) %v must be positive", c.Breaker.Timeout)
	case c.Breaker.HalfOpenRequests < 1 || c.Breaker.HalfOpenRequests > 1000:
		return bad("Breaker.HalfOpenRequests (half_open_requests) %d must be within 1..1000", c.Breaker.HalfOpenRequests)
	case c.Breaker.FailureRate < 0 || c.Breaker.FailureRate > 1:
		return bad("Breaker.FailureRate %v must be within 0..1 (0: off)", c.Breaker.FailureRate)
	case c.Breaker.Window < 0:
		return bad("Breaker.Window %v must be positive", c.Breaker.Window)
	case c.Breaker.MinRequests < 1:
		return bad("Breaker.MinRequests %d must be at least 1", c.Breaker.MinRequests)
	case c.Outlier.Consecutive < 1:
		return bad("Outlier.Consecutive %d must be at least 1", c.Outlier.Consecutive)
	case c.Outlier.BaseEjectionTime < 0:
		return bad("Outlier.BaseEjectionTime %v must be positive", c.Outlier.BaseEjectionTime)
	case c.Outlier.MaxEjectionTime < c.Outlier.BaseEjectionTime:
		return bad("Outlier.MaxEjectionTime %v must be at least BaseEjectionTime %v", c.Outlier.MaxEjectionTime, c.Outlier.BaseEjectionTime)
	case c.Outlier.MaxEjectionPercent < 0 || c.Outlier.MaxEjectionPercent > 100:
		return bad("Outlier.MaxEjectionPercent %d must be within 0..100", c.Outlier.MaxEjectionPercent)
	case c.Budget.Ratio < 0 || c.Budget.Ratio > 10:
		return bad("Budget.Ratio %v must be within 0..10", c.Budget.Ratio)
	case c.Budget.MinPerSecond < 0:
		return bad("Budget.MinPerSecond %v must not be negative", c.Budget.MinPerSecond)
	case c.Budget.Window < 10*time.Millisecond:
		return bad("Budget.Window %v must be at least 10ms", c.Budget.Window)
	case c.Retry.MaxAttempts < 1 || c.Retry.MaxAttempts > 100:
		return bad("Retry.MaxAttempts %d must be within 1..100", c.Retry.MaxAttempts)
	case c.Retry.BaseBackoff < 0:
		return bad("Retry.BaseBackoff %v must be positive", c.Retry.BaseBackoff)
	case c.Retry.MaxBackoff < c.Retry.BaseBackoff:
		return bad("Retry.MaxBackoff %v must be at least BaseBackoff %v", c.Retry.MaxBackoff, c.Retry.BaseBackoff)
	case c.Retry.Timeout < 0:
		return bad("Retry.Timeout %v must be positive", c.Retry.Timeout)
	case c.Hedge.Quantile <= 0 || c.Hedge.Quantile >= 1:
		return bad("Hedge.Quantile %v must be within (0, 1)", c.Hedge.Quantile)
	case c.Hedge.MinSamples < 1:
		return bad("Hedge.MinSamples %d must be at least 1", c.Hedge.MinSamples)
	case c.Hedge.MinDelay < 0:
		return bad("Hedge.MinDelay %v must be positive", c.Hedge.MinDelay)
	case c.Hedge.Window < 10*time.Millisecond:
		return bad("Hedge.Window %v must be at least 10ms", c.Hedge.Window)
	}
	return nil
}
