package balance

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Errors of Pick and Do; test with errors.Is.
var (
	// ErrNoEndpoint: no candidate is usable (the error is a *NoEndpointError
	// naming the reason per endpoint).
	ErrNoEndpoint = errors.New("no usable endpoint")
	// ErrClosed: the Balancer was closed.
	ErrClosed = errors.New("balancer closed")
)

// Reason kinds of EndpointReason.
const (
	ReasonDown        = "down"           // Endpoint.Down was set by the caller (unhealthy)
	ReasonEjected     = "ejected"        // outlier ejection
	ReasonBreakerOpen = "breaker_open"   // circuit breaker open
	ReasonHalfOpen    = "half_open_busy" // breaker half-open with every probe slot taken
)

// EndpointReason says why one endpoint could not be used.
type EndpointReason struct {
	ID, Node string
	Kind     string    // one of the Reason* constants
	Detail   string    // Endpoint.Down for ReasonDown
	Until    time.Time // end of the ejection, or when an open breaker half-opens
}

func (r EndpointReason) String(now time.Time) string {
	name := r.ID
	if r.Node != "" {
		name += "@" + r.Node
	}
	switch r.Kind {
	case ReasonDown:
		return name + " " + r.Detail
	case ReasonEjected:
		return fmt.Sprintf("%s ejected (for %v more)", name, r.Until.Sub(now).Round(time.Millisecond))
	case ReasonBreakerOpen:
		return fmt.Sprintf("%s breaker open (half-opens in %v)", name, r.Until.Sub(now).Round(time.Millisecond))
	case ReasonHalfOpen:
		return name + " breaker half-open (probe slots taken)"
	}
	return name + " " + r.Kind
}

// NoEndpointError is returned when no candidate is usable; it names the
// reason for each endpoint. errors.Is(err, ErrNoEndpoint) holds.
type NoEndpointError struct {
	Reasons []EndpointReason
	At      time.Time
}

func (e *NoEndpointError) Error() string {
	if len(e.Reasons) == 0 {
		return "no endpoints registered"
	}
	parts := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		parts[i] = r.String(e.At)
	}
	return "no usable endpoint: " + strings.Join(parts, "; ")
}

func (e *NoEndpointError) Is(target error) bool { return target == ErrNoEndpoint }

// Pick chooses an endpoint among candidates for req. The candidates are the
// service's endpoints as the caller knows them (typically every registered
// endpoint; those the caller knows are unhealthy carry Down). Endpoints that
// are Down, ejected or whose breaker is open are skipped; if only ejected ones
// remain, ejection is ignored (Envoy's panic mode). The returned Ticket must
// be completed with Done when the request ends.
func (b *Balancer) Pick(req Request, candidates []Endpoint) (Endpoint, Ticket, error) {
	return b.pick(req, candidates, false)
}

// pick is Pick; with track (Do), it also registers the attempt goroutine
// about to start in b.wg, under the lock so that Close cannot miss it.
func (b *Balancer) pick(req Request, candidates []Endpoint, track bool) (Endpoint, Ticket, error) {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return Endpoint{}, Ticket{}, ErrClosed
	}
	now := b.clock.Now()
	i, st, err := b.pickLocked(&req, candidates, now)
	if err != nil {
		evs := b.takeEvents()
		b.mu.Unlock()
		evs.flush()
		return Endpoint{}, Ticket{}, err
	}
	t := &ticket{b: b, st: st}
	t.gen, t.probe = st.br.admit(&b.cfg.Breaker)
	st.inflight++
	if track {
		b.wg.Add(1)
	}
	evs := b.takeEvents()
	b.mu.Unlock()
	evs.flush()
	return candidates[i], Ticket{t}, nil
}

func (b *Balancer) pickLocked(req *Request, cands []Endpoint, now time.Time) (int, *epState, error) {
	if len(cands) == 0 {
		return 0, nil, &NoEndpointError{At: now}
	}
	b.known = len(cands)
	b.picks++
	if now.Sub(b.lastSweep) >= time.Minute {
		b.sweep(now)
		b.lastSweep = now
	}
	b.cand = b.cand[:0]
	b.states(cands, now)
	ejectedOnly := 0
	for i := range cands {
		ep := &cands[i]
		st := b.st[i]
		if ep.Down != "" {
			continue
		}
		ok, changed := st.br.usable(now, &b.cfg.Breaker)
		if changed {
			b.emit(Event{Kind: BreakerChanged, Endpoint: st.id, At: now, From: Open, To: HalfOpen})
		}
		if !ok {
			continue
		}
		if !b.cfg.Outlier.Disabled {
			on, changed := st.out.active(now)
			if changed {
				b.emit(Event{Kind: Unejected, Endpoint: st.id, At: now})
			}
			if on {
				ejectedOnly++
				continue
			}
		}
		b.cand = append(b.cand, i)
	}
	if len(b.cand) == 0 && ejectedOnly > 0 {
		// Panic mode: every otherwise usable endpoint is ejected.
		for i := range cands {
			if cands[i].Down == "" && b.st[i].out.ejected {
				if ok, _ := b.st[i].br.usable(now, &b.cfg.Breaker); ok {
					b.cand = append(b.cand, i)
				}
			}
		}
	}
	if len(b.cand) == 0 {
		return 0, nil, b.reasons(cands, now)
	}
	if len(req.Exclude) > 0 {
		b.alt = b.alt[:0]
		for _, i := range b.cand {
			if !slices.Contains(req.Exclude, cands[i].ID) {
				b.alt = append(b.alt, i)
			}
		}
		if len(b.alt) > 0 {
			b.cand, b.alt = b.alt, b.cand
		}
	}
	if !b.cfg.DisableLocality || b.cfg.Policy == GeoProximity {
		b.filterLocality(req, cands)
	}
	i := b.choose(req, cands, now)
	return i, b.st[i], nil
}

// states fills b.st with the state of each candidate. The candidates are
// usually the same list as in the previous Pick: then the states are reused
// without map lookups.
func (b *Balancer) states(cands []Endpoint, now time.Time) {
	if len(cands) == len(b.lastIDs) {
		same := true
		for i := range cands {
			if cands[i].ID != b.lastIDs[i] {
				same = false
				break
			}
		}
		if same {
			b.st = b.st[:len(cands)]
			return
		}
	}
	b.st, b.lastIDs = b.st[:0], b.lastIDs[:0]
	for i := range cands {
		b.st = append(b.st, b.state(cands[i].ID, now))
		b.lastIDs = append(b.lastIDs, cands[i].ID)
	}
}

// tier ranks an endpoint's locality relative to the caller: 3 same node, 2
// same zone (and region, when both are labelled), 1 same region, 0 other.
func tier(req *Request, ep *Endpoint) int {
	switch {
	case ep.Local:
		return 3
	case req.Zone != "" && ep.Zone == req.Zone && (req.Region == "" || ep.Region == "" || ep.Region == req.Region):
		return 2
	case req.Region != "" && ep.Region == req.Region:
		return 1
	}
	return 0
}

func (b *Balancer) filterLocality(req *Request, cands []Endpoint) {
	best := 0
	b.tiers = b.tiers[:0]
	for _, i := range b.cand {
		t := tier(req, &cands[i])
		b.tiers = append(b.tiers, int8(t))
		best = max(best, t)
	}
	if best == 0 {
		return
	}
	n := 0
	for k, i := range b.cand {
		if int(b.tiers[k]) == best {
			b.cand[n] = i
			n++
		}
	}
	b.cand = b.cand[:n]
}

func (b *Balancer) reasons(cands []Endpoint, now time.Time) *NoEndpointError {
	e := &NoEndpointError{At: now, Reasons: make([]EndpointReason, 0, len(cands))}
	for i := range cands {
		ep, st := &cands[i], b.st[i]
		r := EndpointReason{ID: ep.ID, Node: ep.Node}
		switch {
		case ep.Down != "":
			r.Kind, r.Detail = ReasonDown, ep.Down
		case st.br.state == Open && !b.cfg.Breaker.Disabled:
			r.Kind, r.Until = ReasonBreakerOpen, st.br.retryAt
		case st.br.state == HalfOpen && !b.cfg.Breaker.Disabled:
			r.Kind = ReasonHalfOpen
		case st.out.ejected:
			r.Kind, r.Until = ReasonEjected, st.out.until
		default:
			continue
		}
		e.Reasons = append(e.Reasons, r)
	}
	return e
}

// choose applies the policy to b.cand (non-empty) and returns a candidate index.
func (b *Balancer) choose(req *Request, cands []Endpoint, now time.Time) int {
	c := b.cand
	if len(c) == 1 {
		if b.cfg.Policy == RoundRobin {
			b.rr++
		}
		return c[0]
	}
	switch b.cfg.Policy {
	case LeastConn:
		return b.leastConn(cands)
	case Random:
		return b.random(cands)
	case IPHash:
		if req.Key == "" {
			return b.random(cands)
		}
		return b.rendezvous(req.Key, cands)
	case P2CEWMA:
		return b.p2c(cands, now)
	case GeoProximity:
		return b.nearest(cands, now)
	}
	return b.roundRobin(cands)
}

func (b *Balancer) equalWeights(cands []Endpoint) bool {
	w := cands[b.cand[0]].weight()
	for _, i := range b.cand[1:] {
		if cands[i].weight() != w {
			return false
		}
	}
	return true
}

// roundRobin: a rotating counter over equal weights, nginx's smooth weighted
// round robin otherwise.
func (b *Balancer) roundRobin(cands []Endpoint) int {
	if b.equalWeights(cands) {
		i := b.cand[b.rr%uint64(len(b.cand))]
		b.rr++
		return i
	}
	total, best := 0, -1
	for _, i := range b.cand {
		w := cands[i].weight()
		st := b.st[i]
		st.swrr += w
		total += w
		if best < 0 || st.swrr > b.st[best].swrr {
			best = i
		}
	}
	b.st[best].swrr -= total
	return best
}

func (b *Balancer) random(cands []Endpoint) int {
	if b.equalWeights(cands) {
		return b.cand[b.rng.IntN(len(b.cand))]
	}
	total := 0
	for _, i := range b.cand {
		total += cands[i].weight()
	}
	r := b.rng.IntN(total)
	for _, i := range b.cand {
		r -= cands[i].weight()
		if r < 0 {
			return i
		}
	}
	return b.cand[len(b.cand)-1]
}

// leastConn: fewest in-flight requests per unit of weight; ties are broken
// uniformly at random.
func (b *Balancer) leastConn(cands []Endpoint) int {
	best, ties := -1, 0
	var bestLoad float64
	for _, i := range b.cand {
		load := float64(b.st[i].inflight+1) / float64(cands[i].weight())
		switch {
		case best < 0 || load < bestLoad:
			best, bestLoad, ties = i, load, 1
		case load == bestLoad:
			ties++
			if b.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// rendezvous: highest random weight hashing of key over the candidates
// (weighted: score = w / -ln(u)), so removing an endpoint only moves its keys.
func (b *Balancer) rendezvous(key string, cands []Endpoint) int {
	kh := hashString(key)
	equal := b.equalWeights(cands)
	best := -1
	var bestScore float64
	var bestHash uint64
	for _, i := range b.cand {
		h := mix64(kh ^ b.st[i].idHash)
		if equal {
			if best < 0 || h > bestHash {
				best, bestHash = i, h
			}
			continue
		}
		u := (float64(h>>11) + 0.5) / (1 << 53)
		s := float64(cands[i].weight()) / -math.Log(u)
		if best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// p2c: two distinct random candidates, the one with the lower
// latency * (in-flight + 1) / weight wins.
func (b *Balancer) p2c(cands []Endpoint, now time.Time) int {
	n := len(b.cand)
	x := b.rng.IntN(n)
	y := b.rng.IntN(n - 1)
	if y >= x {
		y++
	}
	i, j := b.cand[x], b.cand[y]
	if b.load(i, cands, now) <= b.load(j, cands, now) {
		return i
	}
	return j
}

func (b *Balancer) load(i int, cands []Endpoint, now time.Time) float64 {
	st := b.st[i]
	return b.latency(st, &cands[i], now) * float64(st.inflight+1) / float64(cands[i].weight())
}

// nearest (geo_proximity, after the locality tiers): the lowest RTT (the
// endpoint's RTT, else its measured latency); endpoints within 20 % (at least
// 500 µs) of the best are equally near and share the load by fewest in-flight
// requests, ties broken at random. Endpoints of unknown distance rank last.
func (b *Balancer) nearest(cands []Endpoint, now time.Time) int {
	rtt := func(i int) float64 {
		if r := cands[i].RTT; r > 0 {
			return float64(r)
		}
		if st := b.st[i]; st.measured {
			return b.latency(st, &cands[i], now)
		}
		return math.Inf(1)
	}
	minRTT := math.Inf(1)
	for _, i := range b.cand {
		minRTT = min(minRTT, rtt(i))
	}
	if !math.IsInf(minRTT, 1) {
		limit := minRTT + max(minRTT/5, float64(500*time.Microsecond))
		n := 0
		for _, i := range b.cand {
			if rtt(i) <= limit {
				b.cand[n] = i
				n++
			}
		}
		b.cand = b.cand[:n]
	}
	return b.leastConn(cands)
}
