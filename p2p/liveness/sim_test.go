package liveness

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The simulation harness: N detectors on a virtual network with a virtual
// clock. Events (packet deliveries and timer wakeups) run in time order, so
// minutes of cluster life take milliseconds and every run with the same seed
// is identical.

var simEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func simID(i int) string { return fmt.Sprintf("12D3KooWsim%041d", i) } // 52 bytes, like a peer ID

type simNet struct {
	tb      testing.TB
	cfg     Config
	rng     *rand.Rand
	now     time.Time
	nodes   []*simNode
	byID    map[string]*simNode
	q       simQueue
	seq     uint64
	latency time.Duration // one way, fixed part
	jitter  time.Duration // one way, random part
	loss    float64       // drop probability per packet
	group   map[string]int
	lag     time.Duration // timers fire this late (as real timers do)
	spins   int
	lastNow time.Time
}

type simNode struct {
	id      string
	det     *Detector
	down    bool
	slow    time.Duration // inbound packets are processed up to this late
	skew    time.Duration // the node's clock runs this far ahead of s.now
	lastIn  time.Time     // FIFO for delayed inbound processing
	tickGen uint64
	tickAt  time.Time
	ticking bool
	sent    int64 // payload bytes
	pkts    int64 // packets sent
	recv    int64
	events  []Event
}

type simEvent struct {
	at   time.Time
	seq  uint64
	node *simNode
	tick bool
	gen  uint64
	from string
	data []byte
}

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// newSim starts n fully meshed nodes at simEpoch with a LAN-like network.
func newSim(tb testing.TB, n int, seed uint64, cfg Config) *simNet {
	s := &simNet{
		tb:      tb,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(seed, 0x5eed)),
		now:     simEpoch,
		byID:    make(map[string]*simNode),
		latency: 300 * time.Microsecond,
		jitter:  700 * time.Microsecond,
		lag:     time.Millisecond,
	}
	for i := 0; i < n; i++ {
		nd := &simNode{id: simID(i)}
		s.nodes = append(s.nodes, nd)
		s.byID[nd.id] = nd
	}
	for _, nd := range s.nodes {
		s.boot(nd, uint64(s.now.UnixMilli()))
	}
	return s
}

// boot (re)starts nd with a fresh detector that knows every other node.
func (s *simNet) boot(nd *simNode, inc uint64) {
	cfg := s.cfg
	cfg.Rand = rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
	d, err := New(nd.id, inc, cfg)
	if err != nil {
		s.tb.Fatal(err)
	}
	for _, o := range s.nodes {
		if o != nd {
			if err := d.AddMember(o.id, s.now); err != nil {
				s.tb.Fatal(err)
			}
		}
	}
	nd.det = d
	nd.down = false
	nd.ticking = false
	s.schedule(nd)
}

func (s *simNet) node(i int) *simNode { return s.nodes[i] }

func (s *simNet) kill(nd *simNode) { nd.down = true }

func (s *simNet) restart(nd *simNode) { s.boot(nd, uint64(s.now.UnixMilli())) }

// partition puts nodes in groups; packets only flow inside a group.
func (s *simNet) partition(groups ...[]*simNode) {
	s.group = make(map[string]int)
	for g, nodes := range groups {
		for _, nd := range nodes {
			s.group[nd.id] = g
		}
	}
}

func (s *simNet) heal() { s.group = nil }

func (s *simNet) push(e *simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

// schedule (re)arms nd's timer at its detector's next deadline.
func (s *simNet) schedule(nd *simNode) {
	if nd.down {
		return
	}
	at, ok := nd.det.NextDeadline()
	if !ok {
		nd.tickGen++
		nd.ticking = false
		return
	}
	at = at.Add(s.lag - nd.skew)
	if at.Before(s.now) {
		at = s.now
	}
	if nd.ticking && at.Equal(nd.tickAt) {
		return
	}
	nd.tickGen++
	nd.tickAt = at
	nd.ticking = true
	s.push(&simEvent{at: at, node: nd, tick: true, gen: nd.tickGen})
}

func (s *simNet) send(from *simNode, pkts []Packet) {
	for _, p := range pkts {
		from.sent += int64(len(p.Data))
		from.pkts++
		to := s.byID[p.To]
		if to == nil || to.down {
			continue
		}
		if s.group != nil && s.group[from.id] != s.group[to.id] {
			continue
		}
		if s.loss > 0 && s.rng.Float64() < s.loss {
			continue
		}
		at := s.now.Add(s.latency + time.Duration(s.rng.Int64N(int64(s.jitter)+1)))
		if to.slow > 0 {
			at = at.Add(to.slow/2 + time.Duration(s.rng.Int64N(int64(to.slow/2)+1)))
			if at.Before(to.lastIn) {
				at = to.lastIn
			}
			to.lastIn = at
		}
		s.push(&simEvent{at: at, node: to, from: from.id, data: p.Data})
	}
}

// run advances the virtual clock by d.
func (s *simNet) run(d time.Duration) { s.runUntil(s.now.Add(d), nil) }

// runUntil processes events up to end, or until done returns true (checked
// after each event). It reports whether done returned true.
func (s *simNet) runUntil(end time.Time, done func() bool) bool {
	for s.q.Len() > 0 && !s.q[0].at.After(end) {
		e := heap.Pop(&s.q).(*simEvent)
		nd := e.node
		if nd.down || (e.tick && e.gen != nd.tickGen) {
			continue
		}
		s.now = e.at
		if s.now.Equal(s.lastNow) {
			s.spins++
			if s.spins > 100000 {
				s.tb.Fatalf("simulation spins at %v: node %s tick=%v left=%v q=%d", s.now, nd.id, e.tick, nd.det.left, nd.det.queue.len())
			}
		} else {
			s.spins, s.lastNow = 0, s.now
		}
		if e.tick {
			nd.ticking = false
			s.send(nd, nd.det.Tick(s.now.Add(nd.skew)))
		} else {
			nd.recv += int64(len(e.data))
			out, err := nd.det.Handle(e.from, e.data, s.now.Add(nd.skew))
			if err != nil {
				s.tb.Fatalf("%s: Handle from %s: %v", nd.id, e.from, err)
			}
			s.send(nd, out)
		}
		nd.events = append(nd.events, nd.det.Events()...)
		s.schedule(nd)
		if done != nil && done() {
			return true
		}
	}
	s.now = end
	return done != nil && done()
}

// allSee reports whether every live node other than target sees target in state st.
func (s *simNet) allSee(target *simNode, st State) bool {
	for _, nd := range s.nodes {
		if nd == target || nd.down {
			continue
		}
		m, ok := nd.det.Status(target.id)
		if !ok || m.State != st {
			return false
		}
	}
	return true
}

// firstEvent returns when observer first saw kind about target after t.
func firstEvent(observer *simNode, target string, kind EventKind, after time.Time) (time.Time, bool) {
	for _, e := range observer.events {
		if e.ID == target && e.Kind == kind && !e.At.Before(after) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// countEvents counts events of kind seen by every node in nodes about ids
// for which keep returns true.
func (s *simNet) countEvents(kind EventKind, keep func(observer, subject string) bool) int {
	n := 0
	for _, nd := range s.nodes {
		for _, e := range nd.events {
			if e.Kind == kind && keep(nd.id, e.ID) {
				n++
			}
		}
	}
	return n
}

// detect kills a random node after warmup and returns the time until every
// other node marked it dead (or limit).
func detectOnce(tb testing.TB, n int, seed uint64, cfg Config, warmup, limit time.Duration) (time.Duration, bool) {
	s := newSim(tb, n, seed, cfg)
	s.run(warmup + time.Duration(s.rng.Int64N(int64(time.Second))))
	victim := s.node(s.rng.IntN(n))
	killedAt := s.now
	s.kill(victim)
	ok := s.runUntil(killedAt.Add(limit), func() bool { return s.allSee(victim, StateDead) })
	return s.now.Sub(killedAt), ok
}
