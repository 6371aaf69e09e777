package locks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// memNet is an in-process cluster network: raft.InmemTransport for Raft, direct calls for
// the forward protocol, with partitions, kills and freezes.
type memNet struct {
	mu      sync.Mutex
	nodes   map[string]*memNode
	cut     map[[2]string]bool // pairs that cannot talk (both orders stored)
	started time.Time
}

type memNode struct {
	id      string
	net     *memNet
	trans   *raft.InmemTransport
	handler func(ctx context.Context, req *Request) *Response
	down    bool          // killed
	frozen  chan struct{} // non-nil while frozen: closed at thaw
	stores  *memStores
	svc     *Service
}

func newMemNet() *memNet {
	return &memNet{nodes: map[string]*memNode{}, cut: map[[2]string]bool{}, started: time.Now()}
}

// reachable reports whether a and b can talk (caller holds mu).
func (n *memNet) reachable(a, b string) bool {
	na, nb := n.nodes[a], n.nodes[b]
	if na == nil || nb == nil || na.down || nb.down || na.frozen != nil || nb.frozen != nil {
		return false
	}
	return !n.cut[[2]string{a, b}]
}

// rewire connects every reachable pair's Raft transports and disconnects the others.
func (n *memNet) rewire() {
	for a, na := range n.nodes {
		if na.trans == nil {
			continue
		}
		na.trans.DisconnectAll()
		for b, nb := range n.nodes {
			if a != b && nb.trans != nil && n.reachable(a, b) {
				na.trans.Connect(raft.ServerAddress(b), nb.trans)
			}
		}
	}
}

// memNetwork is one node's view (Network).
type memNetwork struct{ n *memNode }

func (m memNetwork) Raft() raft.Transport { return m.n.trans }

func (m memNetwork) Serve(h func(ctx context.Context, req *Request) *Response) {
	m.n.net.mu.Lock()
	m.n.handler = h
	m.n.net.mu.Unlock()
}

func (m memNetwork) Call(ctx context.Context, to string, req *Request) (*Response, error) {
	nt := m.n.net
	nt.mu.Lock()
	ok := nt.reachable(m.n.id, to)
	var h func(ctx context.Context, req *Request) *Response
	if t := nt.nodes[to]; t != nil {
		h = t.handler
	}
	nt.mu.Unlock()
	if !ok || h == nil {
		return nil, fmt.Errorf("memnet: %s unreachable from %s", to, m.n.id)
	}
	// Through the codec, as on the wire.
	b, err := encMode.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := DecodeRequest(b)
	if err != nil {
		return nil, err
	}
	resp := h(ctx, r)
	nt.mu.Lock()
	ok = nt.reachable(m.n.id, to)
	nt.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("memnet: %s went unreachable from %s during the call", to, m.n.id)
	}
	rb, err := encMode.Marshal(resp)
	if err != nil {
		return nil, err
	}
	return DecodeResponse(rb)
}

// LockMembers: members reachable from this node are alive; the others dead since the
// start (so the grace counts from when the cluster started, tests set it short).
type memMembers struct {
	n     *memNode
	since map[string]time.Time // when each node was last seen (guarded by net.mu)
}

func (m *memMembers) LockMembers() []Member {
	nt := m.n.net
	nt.mu.Lock()
	defer nt.mu.Unlock()
	now := time.Now()
	var out []Member
	for id, o := range nt.nodes {
		alive := id == m.n.id || nt.reachable(m.n.id, id)
		if alive {
			m.since[id] = now
		}
		since, ok := m.since[id]
		if !ok {
			since = nt.started
		}
		mem := Member{ID: id, Zone: "z" + id[len(id)-1:], Alive: alive, Since: since}
		if alive {
			mem.Since = nt.started // up since the start: stable
		}
		_ = o
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// cluster is an in-process lock group.
type cluster struct {
	t    testing.TB
	net  *memNet
	ids  []string
	cfg  Config
	logs *slog.Logger
}

func testConfig() Config {
	return Config{LockDelay: 200 * time.Millisecond, StableAfter: 50 * time.Millisecond, Grace: time.Hour,
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
		LeaderLeaseTimeout: 75 * time.Millisecond, Tick: 10 * time.Millisecond}
}

func newCluster(t testing.TB, size int, cfg Config) *cluster {
	c := &cluster{t: t, net: newMemNet(), cfg: cfg, logs: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := 0; i < size; i++ {
		id := fmt.Sprintf("node-%d", i+1)
		c.ids = append(c.ids, id)
		c.net.nodes[id] = &memNode{id: id, net: c.net, stores: &memStores{mem: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}}
	}
	for _, id := range c.ids {
		c.start(id)
	}
	t.Cleanup(c.close)
	return c
}

// start (re)starts node id on its stores.
func (c *cluster) start(id string) {
	nd := c.net.nodes[id]
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	c.net.mu.Lock()
	nd.trans = trans
	nd.down = false
	nd.handler = nil
	c.net.rewire()
	c.net.mu.Unlock()
	cfg := c.cfg
	cfg.Self = id
	cfg.stores = nd.stores
	svc, err := New(context.Background(), cfg, memNetwork{nd}, &memMembers{n: nd, since: map[string]time.Time{}}, c.logs)
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	svc.Start()
	c.net.mu.Lock()
	nd.svc = svc
	c.net.mu.Unlock()
}

// kill stops node id as a crash would (its stores survive for a restart).
func (c *cluster) kill(id string) {
	c.net.mu.Lock()
	nd := c.net.nodes[id]
	if nd.down {
		c.net.mu.Unlock()
		return
	}
	nd.down = true
	svc := nd.svc
	nd.svc = nil
	c.net.rewire()
	c.net.mu.Unlock()
	if svc != nil {
		svc.Close()
	}
}

// partition cuts a from b (both ways); heal rejoins them.
func (c *cluster) partition(a, b string, cut bool) {
	c.net.mu.Lock()
	if cut {
		c.net.cut[[2]string{a, b}], c.net.cut[[2]string{b, a}] = true, true
	} else {
		delete(c.net.cut, [2]string{a, b})
		delete(c.net.cut, [2]string{b, a})
	}
	c.net.rewire()
	c.net.mu.Unlock()
}

// freeze makes node id unreachable as if SIGSTOPped (in process its goroutines still run,
// but nothing it says reaches anyone); thaw undoes it.
func (c *cluster) freeze(id string, on bool) {
	c.net.mu.Lock()
	nd := c.net.nodes[id]
	if on && nd.frozen == nil {
		nd.frozen = make(chan struct{})
	} else if !on && nd.frozen != nil {
		close(nd.frozen)
		nd.frozen = nil
	}
	c.net.rewire()
	c.net.mu.Unlock()
}

func (c *cluster) svc(id string) *Service {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	return c.net.nodes[id].svc
}

func (c *cluster) close() {
	for _, id := range c.ids {
		c.kill(id)
	}
}

// leader waits for a ready leader and returns it.
func (c *cluster) leader(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		for _, id := range c.ids {
			if s := c.svc(id); s != nil && s.isLeader() {
				return id
			}
		}
		if !time.Now().Before(deadline) {
			return ""
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitVoters waits until the leader's configuration has n voters.
func (c *cluster) waitVoters(n int, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.leader(timeout); l != "" {
			if st := c.svc(l).Status(); len(st.Voters) == n {
				return st.Voters
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader with %d voters within %s", n, timeout)
	return nil
}
