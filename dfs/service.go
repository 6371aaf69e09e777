package dfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/state"
)

// Errors of the DFS (classified with errors.Is; routes.go maps them to statuses).
var (
	ErrNotFound = errors.New("dfs: no such file")
	// ErrNoRoom: the cluster cannot hold the file with its replication factor.
	ErrNoRoom = errors.New("dfs: not enough room in the cluster")
	// ErrWriteFailed: fewer holders than the ack count confirmed a write.
	ErrWriteFailed = errors.New("dfs: write not acknowledged")
	// ErrBadRequest: a setting or argument is out of range.
	ErrBadRequest = errors.New("dfs: bad request")
	// ErrUnsupported: strong consistency (the DFS locks issue) is not available.
	ErrUnsupported = errors.New("dfs: unsupported")
	// ErrClosed: the service is shutting down.
	ErrClosed = errors.New("dfs: closed")
)

// Content is what the DFS needs of the content layer (dfs/content.Store): a block store
// with UnixFS DAGs, pins and transfer between members. Implementations are safe for
// concurrent use.
type Content interface {
	// Add chunks r into a DAG stored locally and returns its root and byte size.
	Add(ctx context.Context, r io.Reader, chunker string) (root cid.Cid, size int64, err error)
	// Open reads the file of root, fetching missing blocks from holders first.
	Open(ctx context.Context, root cid.Cid, holders []peer.ID) (io.ReadSeekCloser, error)
	// Pin fetches every missing block of root (from holders first) and keeps them; it
	// returns once they are durable on disk.
	Pin(ctx context.Context, root cid.Cid, holders []peer.ID) error
	// Unpin lets root's blocks become cache (evictable, collectable).
	Unpin(root cid.Cid) error
	// Has reports whether every block of root is stored here.
	Has(ctx context.Context, root cid.Cid) (bool, error)
	// UsedBytes is the size of the block store.
	UsedBytes() int64
	// GC removes blocks not reachable from pins nor from roots keep approves.
	GC(ctx context.Context, keep func(cid.Cid) bool) error
}

// Members is what the DFS needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
}

// Ledger is the node's disk accounting as the DFS needs it.
type Ledger interface {
	// DFSRoomBytes is the most the block store may hold in all: what it holds plus the
	// disk instances and reservations leave free (0: unknown).
	DFSRoomBytes() int64
}

// Peers asks another member to pin a root (the pin protocol, pinproto.go).
type Peers interface {
	Pin(ctx context.Context, to peer.ID, req PinRequest) error
}

// Config configures the service. Zero values take the documented defaults.
type Config struct {
	Self     peer.ID
	NodeName string
	// Zone is this node's failure domain (the value of its zone or region label).
	Zone string
	// CapacityBytes is the room of the block store charged to the node's disk (default:
	// the node's disk total from membership; 0 and unknown: 10 GiB).
	CapacityBytes int64
	// Ledger, when set, bounds the block store by the node's disk ledger (when
	// CapacityBytes is 0).
	Ledger Ledger
	// Grace is how long a dead holder still counts as a copy (default 30 s).
	Grace time.Duration
	// RepairInterval is the period of the replication runner (default 5 s).
	RepairInterval time.Duration
	// GCDelay: an unreferenced pin is dropped only this long after it was made (default
	// 10 min, longer than any write), so no in-flight write loses its blocks.
	GCDelay time.Duration
	// WriteTimeout bounds the holders' pinning of one write (default 5 min).
	WriteTimeout time.Duration
	// DefaultReplication, DefaultVersions: settings of paths outside any tree (3, 10).
	DefaultReplication int
	DefaultVersions    int
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	// Metrics registers the DFS collectors (nil: a private registry).
	Metrics prometheus.Registerer
	// Consensus is the lock service strong trees commit through (nil: strong trees answer
	// 503 unavailable, "no lock service").
	Consensus Consensus
	// StrongTimeout bounds each call to Consensus (the lock service retries through a
	// leader election within it; default 5 s): a node without quorum answers 503
	// unavailable after it.
	StrongTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	if c.RepairInterval <= 0 {
		c.RepairInterval = 5 * time.Second
	}
	if c.GCDelay <= 0 {
		c.GCDelay = 10 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Minute
	}
	if c.DefaultReplication <= 0 {
		c.DefaultReplication = 3
	}
	if c.DefaultVersions <= 0 {
		c.DefaultVersions = 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.StrongTimeout <= 0 {
		c.StrongTimeout = 5 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
}

// Service is the namespace and everything users see of the DFS: paths, trees, writes
// acknowledged by holders, versions, watch, snapshots and the replication runner.
type Service struct {
	cfg     Config
	self    string          // cfg.Self as text (keys and records)
	ctx     context.Context // the node's shutdown signal
	content Content
	members Members
	peers   Peers
	st      *state.Store
	clock   *crdt.Clock // the store's HLC (its own lock: usable inside Update)
	log     *slog.Logger
	met     *metrics

	mu       sync.Mutex // guards the following fields
	idx      map[string]*pathState
	subs     map[*subscriber]struct{}
	inflight map[string]int // roots of writes in progress (never collected)
	pinning  map[string]bool
	tokens   map[string]uint64 // path -> newest fencing token of a pin request (fence)
	closed   bool

	wmu sync.Mutex // serialises local namespace writes (read entries, write own record)

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// pathState is the index of one path: its writers and what it shows.
type pathState struct {
	writers []string  // peer IDs with an entry record of the path
	vis     []visName // what the path shows (for listing and watch)
}

// visName is one visible name (a compact Visible).
type visName struct {
	path     string
	cur      Version
	conflict bool
}

// New builds the service. peers may be nil until SetPeers (the node's pin protocol).
func New(ctx context.Context, cfg Config, content Content, members Members, peers Peers, st *state.Store, log *slog.Logger) (*Service, error) {
	if content == nil || members == nil || st == nil {
		return nil, fmt.Errorf("dfs: New needs a content store, membership and the state store")
	}
	if cfg.Self == "" {
		return nil, fmt.Errorf("dfs: Config.Self is empty")
	}
	if log == nil {
		log = slog.Default()
	}
	cfg.defaults()
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, self: cfg.Self.String(), ctx: ctx, content: content, members: members, peers: peers, st: st, clock: st.Clock(),
		log: log.With("svc", "dfs"), met: met,
		idx: map[string]*pathState{}, subs: map[*subscriber]struct{}{}, inflight: map[string]int{},
		pinning: map[string]bool{}, tokens: map[string]uint64{}, stop: make(chan struct{}),
	}, nil
}

// SetPeers sets the pin protocol (before Start).
func (s *Service) SetPeers(p Peers) { s.peers = p }

// Start indexes the namespace, follows remote changes and runs the replication runner.
func (s *Service) Start() {
	s.st.Watch(s.onRemote, CollEntries) // first: no remote change falls between scan and watch
	s.st.View(func(v *state.View) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, k := range v.Keys(CollEntries) {
			if p, w, ok := splitEntryKey(k); ok {
				st := s.idx[p]
				if st == nil {
					st = &pathState{}
					s.idx[p] = st
				}
				if !containsStr(st.writers, w) {
					st.writers = append(st.writers, w)
				}
			}
		}
		for p, st := range s.idx {
			st.vis = s.resolveLocked(v, p, st.writers)
		}
	})
	s.writeCapacity()
	s.wg.Add(1)
	go s.runner()
}

// Close stops the runner and ends the watchers. Safe twice.
func (s *Service) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.mu.Lock()
		s.closed = true
		for sub := range s.subs {
			sub.end()
		}
		s.subs = map[*subscriber]struct{}{}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// ---- the index ----

func readEntries(v *state.View, path string, writers []string) []EntryRecord {
	out := make([]EntryRecord, 0, len(writers))
	for _, w := range writers {
		b, _, ok := v.GetLWW(CollEntries, entryKey(path, w))
		if !ok {
			continue
		}
		e, err := decodeEntry(b)
		if err != nil || e.Path != path || e.Cur.WriterID != w {
			continue // a record that does not match its key is ignored everywhere alike
		}
		out = append(out, e)
	}
	return out
}

func (s *Service) resolveLocked(v *state.View, path string, writers []string) []visName {
	vis, _ := s.resolveWinner(v, path, writers)
	return vis
}

// resolveWinner is resolveLocked with the winning version (a deletion's too).
func (s *Service) resolveWinner(v *state.View, path string, writers []string) ([]visName, Version) {
	es := readEntries(v, path, writers)
	w, vis := Resolve(es, policyOf(s.treeOf(v, path)))
	var win Version
	if w >= 0 {
		win = es[w].Cur
	}
	out := make([]visName, len(vis))
	for i, x := range vis {
		out[i] = visName{path: x.Path, cur: x.Entry.Cur, conflict: x.Conflict}
	}
	return out, win
}

// onRemote follows remote changes of the namespace.
func (s *Service) onRemote(cs []crdt.Change) {
	var paths []string
	for _, c := range cs {
		if p, w, ok := splitEntryKey(c.Key); ok {
			paths = append(paths, p)
			s.mu.Lock()
			st := s.idx[p]
			if st == nil {
				st = &pathState{}
				s.idx[p] = st
			}
			if !containsStr(st.writers, w) {
				st.writers = append(st.writers, w)
			}
			s.mu.Unlock()
		}
	}
	s.reindex(paths...)
}

// reindex resolves paths again and emits the watch events of what changed.
func (s *Service) reindex(paths ...string) {
	var evs []api.FSEvent
	if len(paths) == 0 {
		return
	}
	s.st.View(func(v *state.View) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range paths {
			st := s.idx[p]
			if st == nil {
				continue
			}
			nv, win := s.resolveWinner(v, p, st.writers)
			evs = append(evs, diffVisible(st.vis, nv, win)...)
			st.vis = nv
		}
		s.emitLocked(evs) // under mu: every watcher sees one order
	})
}

// diffVisible is the events that turn visible names old into new; win is the path's
// winning version (a deletion names its writer and version).
func diffVisible(old, nw []visName, win Version) []api.FSEvent {
	var evs []api.FSEvent
	om := map[string]visName{}
	for _, o := range old {
		om[o.path] = o
	}
	nm := map[string]bool{}
	for _, n := range nw {
		nm[n.path] = true
		o, had := om[n.path]
		switch {
		case !had:
			evs = append(evs, eventOf(api.FSCreated, n.path, n.cur))
		case o.cur.HLC != n.cur.HLC || o.cur.WriterID != n.cur.WriterID:
			evs = append(evs, eventOf(api.FSModified, n.path, n.cur))
		}
	}
	for _, o := range old {
		if !nm[o.path] {
			v := o.cur
			if win.Deleted && !o.conflict {
				v = win
			}
			evs = append(evs, eventOf(api.FSDeleted, o.path, v))
		}
	}
	return evs
}

func eventOf(typ, path string, v Version) api.FSEvent {
	return api.FSEvent{Type: typ, Path: path, Node: v.Writer, CID: v.CID, Size: v.Size,
		Version: v.Number, HLC: stampString(v.HLC), Time: time.Unix(0, v.HLC.Wall).UTC()}
}

func stampString(s Stamp) string { return fmt.Sprintf("%d.%d", s.Wall, s.Logical) }

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// lookup finds a visible name (a path or a conflict copy) and the entries of its base.
func (s *Service) lookup(v *state.View, name string) (visName, []EntryRecord, bool) {
	base := name
	st := s.idx[name]
	if st == nil {
		if b, ok := conflictBase(name); ok {
			base, st = b, s.idx[b]
		}
	}
	if st == nil {
		return visName{}, nil, false
	}
	for _, x := range st.vis {
		if x.path == name {
			return x, readEntries(v, base, st.writers), true
		}
	}
	return visName{}, readEntries(v, base, st.writers), false
}

// files lists the visible names under prefix (or the one file prefix names), sorted.
func (s *Service) filesLocked(prefix string) []visName {
	var out []visName
	for p, st := range s.idx {
		if p != prefix && !underPrefix(p, prefix) {
			continue
		}
		out = append(out, st.vis...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// ---- trees ----

// treeOf is the settings of the tree holding path (the longest prefix), with defaults.
func (s *Service) treeOf(v *state.View, path string) TreeRecord {
	best := TreeRecord{Prefix: "/"}
	found := false
	for _, k := range v.Keys(CollTrees) {
		if k != path && !underPrefix(path, k) {
			continue
		}
		if found && len(k) <= len(best.Prefix) {
			continue
		}
		b, _, ok := v.GetLWW(CollTrees, k)
		if !ok {
			continue
		}
		t, err := decodeTree(b)
		if err != nil {
			continue
		}
		best, found = t, true
	}
	if best.Replication <= 0 {
		best.Replication = s.cfg.DefaultReplication
	}
	if best.Versions <= 0 {
		best.Versions = s.cfg.DefaultVersions
	}
	if best.Conflict == "" {
		best.Conflict = LastWriteWins
	}
	if best.Consistency == "" {
		best.Consistency = "eventual"
	}
	return best
}

// ---- helpers ----

func (s *Service) nameOf(id string) string {
	for _, n := range s.members.Nodes() {
		if n.ID == id {
			return n.Name
		}
	}
	return id
}

func (s *Service) entryAPI(x visName) api.FSEntry {
	e := api.FSEntry{Path: x.path, CID: x.cur.CID, Size: x.cur.Size, Mode: x.cur.Mode,
		MTime: time.Unix(0, x.cur.MTime).UTC(), Writer: x.cur.Writer, WriterID: x.cur.WriterID,
		Version: x.cur.Number, HLC: stampString(x.cur.HLC), Replication: x.cur.Replication,
		Conflict: x.conflict}
	for _, h := range x.cur.Holders {
		e.Holders = append(e.Holders, s.nameOf(h))
	}
	return e
}
