package balance

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Balancer picks endpoints of one service and keeps per-endpoint state:
// in-flight counts, latency estimates, circuit breakers and outlier
// ejections, plus the service's retry budget and latency quantile. It is safe
// for concurrent use. Create one per service with New.
type Balancer struct {
	mu    sync.Mutex
	cfg   Config
	clock Clock
	rng   *rand.Rand
	eps   map[string]*epState
	known int // candidates in the latest Pick (for the ejection cap)
	// lastSweep is when states of endpoints no longer seen were last dropped.
	lastSweep time.Time
	rr        uint64
	picks     uint64
	budget    budget
	lat       quantile
	events    []Event

	// scratch, reused under mu
	cand    []int
	st      []*epState // state of each candidate of the latest Pick
	lastIDs []string   // their IDs
	alt     []int
	tiers   []int8

	wg     sync.WaitGroup // hedge and abandoned attempts still running (Do)
	closed atomic.Bool
}

type epState struct {
	id       string
	idHash   uint64
	inflight int
	cost     float64 // peak EWMA latency, ns
	costAt   time.Time
	measured bool
	swrr     int
	br       breaker
	out      ejection
	lastSeen time.Time
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// BreakerChanged: the endpoint's breaker moved from From to To.
	BreakerChanged EventKind = iota
	// Ejected: the endpoint is ejected until Until.
	Ejected
	// Unejected: the endpoint's ejection ended.
	Unejected
	// EjectionCapped: the endpoint crossed the failure threshold but was not
	// ejected because MaxEjectionPercent of the endpoints already are.
	EjectionCapped
)

func (k EventKind) String() string {
	switch k {
	case BreakerChanged:
		return "breaker"
	case Ejected:
		return "ejected"
	case Unejected:
		return "unejected"
	case EjectionCapped:
		return "ejection_capped"
	}
	return "unknown"
}

// Event is a breaker transition or an ejection, for logs and metrics.
type Event struct {
	Kind     EventKind
	Endpoint string
	At       time.Time
	From, To BreakerState // BreakerChanged
	Until    time.Time    // Ejected: end of the ejection; BreakerChanged to Open: when it half-opens
}

// New returns a Balancer for cfg (zero fields take their defaults).
func New(cfg Config) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	b := &Balancer{cfg: cfg, clock: cfg.Clock, rng: cfg.Rand, eps: make(map[string]*epState)}
	b.budget = newBudget(&b.cfg.Budget)
	b.lat.window = cfg.Hedge.Window
	return b, nil
}

// Reconfigure applies a new configuration (policy, breaker, ejection, budget,
// retry and hedge settings) and keeps every endpoint's state. Clock and Rand
// are kept when cfg leaves them nil.
func (b *Balancer) Reconfigure(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cfg.Clock == nil {
		cfg.Clock = b.clock
	}
	if cfg.Rand == nil {
		cfg.Rand = b.rng
	}
	cfg = cfg.withDefaults()
	window := b.cfg.Budget.Window
	b.cfg = cfg
	b.clock, b.rng = cfg.Clock, cfg.Rand
	if cfg.Budget.Window != window {
		b.budget = newBudget(&b.cfg.Budget)
	}
	b.lat.window = cfg.Hedge.Window
	return nil
}

// Config returns the effective configuration (defaults filled in).
func (b *Balancer) Config() Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// Close waits for the attempts Do left running (a hedge that lost, attempts
// abandoned at the deadline) to return. Do and Pick fail with ErrClosed
// afterwards.
func (b *Balancer) Close() {
	b.mu.Lock()
	b.closed.Store(true) // under mu: no wg.Add can follow
	b.mu.Unlock()
	b.wg.Wait()
}

// Ticket is the handle of one picked request; report its end with Done.
type Ticket struct{ t *ticket }

type ticket struct {
	b     *Balancer
	st    *epState
	gen   uint32
	probe bool
	done  atomic.Bool
}

// Done reports the end of the request: its latency (as measured by the
// caller) and outcome. Only the first call counts; a zero Ticket ignores it.
func (t Ticket) Done(latency time.Duration, o Outcome) {
	if t.t == nil || !t.t.done.CompareAndSwap(false, true) {
		return
	}
	t.t.b.done(t.t, latency, o)
}

// Probe reports whether the request was admitted as a half-open breaker probe.
func (t Ticket) Probe() bool { return t.t != nil && t.t.probe }

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func mix64(x uint64) uint64 { // splitmix64 finaliser
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (b *Balancer) state(id string, now time.Time) *epState {
	st := b.eps[id]
	if st == nil {
		st = &epState{id: id, idHash: hashString(id)}
		st.br.rate = newRing(b.cfg.Breaker.Window)
		b.eps[id] = st
	}
	st.lastSeen = now
	return st
}

// staleAfter is how long the state of an endpoint no Pick has seen is kept.
const staleAfter = 10 * time.Minute

func (b *Balancer) sweep(now time.Time) {
	for _, st := range b.st[:len(b.lastIDs)] {
		st.lastSeen = now // the cached candidates are in use
	}
	for id, st := range b.eps {
		if st.inflight == 0 && now.Sub(st.lastSeen) > staleAfter {
			delete(b.eps, id)
		}
	}
}

func (b *Balancer) emit(e Event) {
	if b.cfg.OnEvent != nil {
		b.events = append(b.events, e)
	}
}

// pending is a batch of events taken under the lock, with the callback in
// force then, handed over once the lock is released.
type pending struct {
	evs []Event
	fn  func(Event)
}

func (p pending) flush() {
	for _, e := range p.evs {
		p.fn(e)
	}
}

// takeEvents empties the event queue; call with the lock held and flush the
// result after releasing it.
func (b *Balancer) takeEvents() pending {
	if len(b.events) == 0 {
		return pending{}
	}
	p := pending{evs: b.events, fn: b.cfg.OnEvent}
	b.events = nil
	return p
}

func (b *Balancer) done(t *ticket, latency time.Duration, o Outcome) {
	b.mu.Lock()
	now := b.clock.Now()
	st := t.st
	if st.inflight > 0 {
		st.inflight--
	}
	if latency > 0 && (o == OK || o == ServerError || o == Timeout) {
		b.observe(st, now, latency)
		b.lat.observe(now, latency)
	}
	from := st.br.state
	if st.br.record(now, t.gen, t.probe, o, &b.cfg.Breaker) {
		b.emit(Event{Kind: BreakerChanged, Endpoint: st.id, At: now, From: from, To: st.br.state, Until: st.br.retryAt})
	}
	if st.out.record(o, &b.cfg.Outlier) {
		if b.ejectedCount(now) < maxEjected(max(b.known, 1), &b.cfg.Outlier) {
			st.out.eject(now, &b.cfg.Outlier)
			b.emit(Event{Kind: Ejected, Endpoint: st.id, At: now, Until: st.out.until})
		} else {
			b.emit(Event{Kind: EjectionCapped, Endpoint: st.id, At: now})
		}
	}
	evs := b.takeEvents()
	b.mu.Unlock()
	evs.flush()
}

func (b *Balancer) ejectedCount(now time.Time) int {
	n := 0
	for _, st := range b.eps {
		if st.out.ejected && now.Before(st.out.until) {
			n++
		}
	}
	return n
}

// observe feeds a latency into the peak EWMA (Finagle's PeakEwma): a sample
// above the decayed estimate replaces it, a lower one is averaged in with
// weight 1-exp(-elapsed/DecayTime).
func (b *Balancer) observe(st *epState, now time.Time, lat time.Duration) {
	rtt := float64(lat)
	if !st.measured {
		st.cost, st.costAt, st.measured = rtt, now, true
		return
	}
	el := max(now.Sub(st.costAt), 0)
	w := math.Exp(-float64(el) / float64(b.cfg.DecayTime))
	cost := st.cost * w
	if rtt > cost {
		st.cost = rtt
	} else {
		st.cost = cost + rtt*(1-w)
	}
	st.costAt = now
}

// latency is the current estimate for an endpoint: the decayed peak EWMA, or
// the endpoint's RTT or DefaultLatency before the first measurement.
func (b *Balancer) latency(st *epState, ep *Endpoint, now time.Time) float64 {
	if !st.measured {
		if ep != nil && ep.RTT > 0 {
			return float64(ep.RTT)
		}
		return float64(b.cfg.DefaultLatency)
	}
	el := max(now.Sub(st.costAt), 0)
	return st.cost * math.Exp(-float64(el)/float64(b.cfg.DecayTime))
}
