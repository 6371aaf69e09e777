package dfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// This file is the in-process cluster of the tests: real state stores (bbolt, CRDT
// document, HLC) whose deltas travel through an in-memory network that can be cut and
// healed, a content store that keeps whole files as one block each, membership whose
// statuses the test sets, and the pin protocol as direct calls.

type tnet struct {
	mu    sync.Mutex
	nodes map[string]*tnode
	cut   map[[2]string]bool // pairs that cannot talk
	down  map[string]bool
}

type tnode struct {
	t       *testing.T
	name    string
	id      peer.ID
	net     *tnet
	st      *state.Store
	svc     *Service
	content *memContent
	inbox   chan delivery
	done    chan struct{}
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

type delivery struct {
	from peer.ID
	data []byte
}

func (n *tnet) reachable(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[[2]string{a, b}] && !n.cut[[2]string{b, a}] && !n.down[a] && !n.down[b]
}

// Publish sends a local delta to every reachable node (async, in order per receiver).
func (nd *tnode) Publish(delta []byte) {
	nd.net.mu.Lock()
	var to []*tnode
	for _, o := range nd.net.nodes {
		if o != nd {
			to = append(to, o)
		}
	}
	nd.net.mu.Unlock()
	for _, o := range to {
		if nd.net.reachable(nd.name, o.name) {
			select {
			case o.inbox <- delivery{nd.id, append([]byte(nil), delta...)}:
			case <-o.done:
			}
		}
	}
}

func (nd *tnode) deliverLoop() {
	defer nd.wg.Done()
	for {
		select {
		case d := <-nd.inbox:
			if err := nd.st.Apply(d.from, d.data); err != nil {
				nd.t.Errorf("%s: apply: %v", nd.name, err)
			}
		case <-nd.done:
			return
		}
	}
}

// sync exchanges missing state between every reachable pair (anti-entropy).
func (n *tnet) sync(t *testing.T) {
	n.mu.Lock()
	var all []*tnode
	for _, nd := range n.nodes {
		all = append(all, nd)
	}
	n.mu.Unlock()
	for _, a := range all {
		for _, b := range all {
			if a == b || !n.reachable(a.name, b.name) {
				continue
			}
			d, err := a.st.MissingFor(b.st.Version())
			if err != nil {
				t.Fatal(err)
			}
			if d != nil {
				b.inbox <- delivery{a.id, d}
			}
		}
	}
}

// Nodes is the membership every node sees.
func (n *tnet) membersFor(self string) Members { return tmembers{n, self} }

type tmembers struct {
	n    *tnet
	self string
}

func (m tmembers) Nodes() []api.NodeInfo {
	m.n.mu.Lock()
	defer m.n.mu.Unlock()
	var out []api.NodeInfo
	for name, nd := range m.n.nodes {
		st := api.StatusAlive
		if m.n.down[name] || m.n.cut[[2]string{m.self, name}] || m.n.cut[[2]string{name, m.self}] {
			st = api.StatusDead
		}
		out = append(out, api.NodeInfo{Name: name, ID: nd.id.String(), Status: st, Self: name == m.self, LastSeen: nd.lastSeen()})
	}
	return out
}

var deadSince sync.Map // node name -> time.Time

func (nd *tnode) lastSeen() time.Time {
	if t, ok := deadSince.Load(nd.name); ok {
		return t.(time.Time)
	}
	return time.Now()
}

// Pin is the pin protocol as a direct call.
func (nd *tnode) Pin(ctx context.Context, to peer.ID, req PinRequest) error {
	nd.net.mu.Lock()
	var target *tnode
	for _, o := range nd.net.nodes {
		if o.id == to {
			target = o
		}
	}
	nd.net.mu.Unlock()
	if target == nil || !nd.net.reachable(nd.name, target.name) {
		return fmt.Errorf("no connection to %s", to)
	}
	return target.svc.HandlePin(ctx, nd.id, req)
}

type tcfg struct {
	capacity  int64
	grace     time.Duration
	consensus *fakeConsensus // strong trees commit through it (nil: no lock service)
}

func newNet(t *testing.T, names []string, c tcfg) *tnet {
	t.Helper()
	n := &tnet{nodes: map[string]*tnode{}, cut: map[[2]string]bool{}, down: map[string]bool{}}
	dir := t.TempDir()
	for _, name := range names {
		sum := sha256.Sum256([]byte(name))
		mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
		nd := &tnode{t: t, name: name, id: peer.ID(mh), net: n, inbox: make(chan delivery, 4096), done: make(chan struct{})}
		nd.content = &memContent{net: n, self: name, blocks: map[string][]byte{}, pins: map[string]bool{}}
		st, err := state.Open(state.Options{Path: filepath.Join(dir, name+".db"), Cluster: "c", Fresh: true, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load([]byte(nd.id), nd); err != nil {
			t.Fatal(err)
		}
		st.Start()
		nd.st = st
		n.nodes[name] = nd
	}
	for _, name := range names {
		nd := n.nodes[name]
		ctx, cancel := context.WithCancel(context.Background())
		nd.cancel = cancel
		cfg := Config{Self: nd.id, NodeName: name, CapacityBytes: c.capacity, Grace: c.grace,
			RepairInterval: time.Hour, GCDelay: time.Millisecond, DefaultReplication: 2}
		if c.consensus != nil {
			cfg.Consensus = c.consensus.view(name)
		}
		svc, err := New(ctx, cfg, nd.content, n.membersFor(name), nd, nd.st, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		nd.svc = svc
		nd.wg.Add(1)
		go nd.deliverLoop()
		svc.Start()
	}
	t.Cleanup(func() {
		for _, nd := range n.nodes {
			nd.svc.Close()
			nd.cancel()
			close(nd.done)
			nd.wg.Wait()
			nd.st.Close(true)
		}
	})
	n.settle(t)
	return n
}

// settle waits until every reachable node's state holds every delta (the stores agree).
func (n *tnet) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n.sync(t)
		time.Sleep(5 * time.Millisecond)
		same := true
		n.mu.Lock()
		var all []*tnode
		for _, nd := range n.nodes {
			all = append(all, nd)
		}
		n.mu.Unlock()
		for _, a := range all {
			for _, b := range all {
				if a != b && n.reachable(a.name, b.name) {
					d, _ := a.st.MissingFor(b.st.Version())
					same = same && d == nil
				}
			}
		}
		if same {
			for _, nd := range all { // and every node's watcher followed (async after Apply)
				if !nd.svc.indexFresh() {
					same = false
				}
			}
		}
		if same {
			return
		}
	}
	t.Fatal("state did not converge")
}

// indexFresh reports whether the index shows what the state holds.
func (s *Service) indexFresh() bool {
	fresh := true
	s.st.View(func(v *state.View) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, k := range v.Keys(CollEntries) {
			p, w, _ := splitEntryKey(k)
			st := s.idx[p]
			if st == nil || !containsStr(st.writers, w) {
				fresh = false
				return
			}
		}
		for p, st := range s.idx {
			if fmt.Sprint(s.resolveLocked(v, p, st.writers)) != fmt.Sprint(st.vis) {
				fresh = false
				return
			}
		}
	})
	return fresh
}

func (n *tnet) setCut(a, b string, cut bool) {
	n.mu.Lock()
	n.cut[[2]string{a, b}] = cut
	n.mu.Unlock()
}

// ---- content: one block per file, CIDv1 raw sha256 ----

type memContent struct {
	net  *tnet
	self string

	mu     sync.Mutex
	blocks map[string][]byte
	pins   map[string]bool
	full   bool // Pin fails as a full disk
}

func rawCID(b []byte) cid.Cid {
	mh, _ := multihash.Sum(b, multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, mh)
}

func (c *memContent) Add(ctx context.Context, r io.Reader, chunker string) (cid.Cid, int64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return cid.Undef, 0, err
	}
	root := rawCID(b)
	c.mu.Lock()
	c.blocks[root.String()] = b
	c.mu.Unlock()
	return root, int64(len(b)), nil
}

func (c *memContent) fetch(root cid.Cid, holders []peer.ID) ([]byte, error) {
	c.mu.Lock()
	b, ok := c.blocks[root.String()]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	c.net.mu.Lock()
	var srcs []*tnode
	for _, h := range holders {
		for _, nd := range c.net.nodes {
			if nd.id == h {
				srcs = append(srcs, nd)
			}
		}
	}
	c.net.mu.Unlock()
	for _, nd := range srcs {
		if !c.net.reachable(c.self, nd.name) {
			continue
		}
		nd.content.mu.Lock()
		b, ok := nd.content.blocks[root.String()]
		nd.content.mu.Unlock()
		if ok && rawCID(b).Equals(root) {
			c.mu.Lock()
			c.blocks[root.String()] = b
			c.mu.Unlock()
			return b, nil
		}
	}
	return nil, fmt.Errorf("no holder of %s reachable", root)
}

func (c *memContent) Open(ctx context.Context, root cid.Cid, holders []peer.ID) (io.ReadSeekCloser, error) {
	b, err := c.fetch(root, holders)
	if err != nil {
		return nil, err
	}
	return nopCloser{bytes.NewReader(b)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (c *memContent) Pin(ctx context.Context, root cid.Cid, holders []peer.ID) error {
	c.mu.Lock()
	full := c.full
	c.mu.Unlock()
	if full {
		return errors.New("no space left on device")
	}
	if _, err := c.fetch(root, holders); err != nil {
		return err
	}
	c.mu.Lock()
	c.pins[root.String()] = true
	c.mu.Unlock()
	return nil
}

func (c *memContent) Unpin(root cid.Cid) error {
	c.mu.Lock()
	delete(c.pins, root.String())
	c.mu.Unlock()
	return nil
}

func (c *memContent) Has(ctx context.Context, root cid.Cid) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.blocks[root.String()]
	return ok, nil
}

func (c *memContent) pinned(root string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pins[root]
}

func (c *memContent) UsedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, b := range c.blocks {
		n += int64(len(b))
	}
	return n
}

func (c *memContent) GC(ctx context.Context, keep func(cid.Cid) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.blocks {
		if c.pins[k] {
			continue
		}
		if r, err := cid.Decode(k); err == nil && keep(r) {
			continue
		}
		delete(c.blocks, k)
	}
	return nil
}
