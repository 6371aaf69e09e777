package state

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/crdt"
)

// Publisher sends an encoded local delta to the cluster (p2p.Host.Publish). It must not
// block for long: it is called with the document lock held so deltas leave in the order
// they were made.
type Publisher interface {
	Publish(delta []byte)
}

// Options configure a Store.
type Options struct {
	Path    string // the bbolt file, e.g. <data-dir>/state.db
	Cluster string // the cluster name the file must belong to
	// Fresh says the data dir is new (nothing was ever stored): only then may the state
	// file be missing or empty. Otherwise an empty or short file is corrupt.
	Fresh bool
	Log   *slog.Logger
	// SnapshotInterval compacts the delta log into a snapshot this often (default 30 s).
	SnapshotInterval time.Duration
	// Now is the wall clock of the hybrid logical clock (default time.Now).
	Now func() time.Time
}

// Store owns the replicated document: its lock, its persistence and the publishing of local
// changes. Features never touch the document directly: they read in View, change in Update
// and learn of remote changes through Watch.
type Store struct {
	opts Options
	log  *slog.Logger
	db   *boltStore
	pub  Publisher

	gossipDelay atomic.Pointer[func(time.Duration)] // ObserveGossipDelay

	mu    sync.Mutex // guards doc and clock
	doc   *crdt.Document
	clock *crdt.Clock

	persistCh chan []byte

	imu       sync.Mutex        // guards index, collIndex, indexCh
	index     uint64            // bumped by every committed change (index.go)
	collIndex map[string]uint64 // collection -> index of its last change
	indexCh   chan struct{}     // closed and replaced at every bump: wakes WaitIndex

	wmu      sync.Mutex // guards watchers, queue, stopped
	watchers []*watcher
	queue    [][]crdt.Change
	wake     chan struct{} // capacity 1
	stopped  bool

	stop      chan struct{}
	wg        sync.WaitGroup
	seed      []byte // the node's peer ID, for replica IDs
	started   bool
	closeOnce sync.Once
}

type watcher struct {
	colls map[string]bool // nil: every collection
	fn    func([]crdt.Change)
}

// Open opens (or creates) the state file. It refuses a file of another cluster and a
// corrupt file (CorruptStateError, naming the recovery). Load must follow before use.
func Open(opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := openBolt(opts.Path, opts.Cluster, opts.Fresh)
	if err != nil {
		return nil, err
	}
	return &Store{
		opts: opts, log: opts.Log, db: db,
		persistCh: make(chan []byte, 4096), wake: make(chan struct{}, 1), stop: make(chan struct{}),

		index: 1, collIndex: map[string]uint64{}, indexCh: make(chan struct{}),
	}, nil
}

// Load builds the document for the replica identified by seed (the node's peer ID) and
// replays the persisted state into it. Local changes are published through pub.
func (s *Store) Load(seed []byte, pub Publisher) (loaded int, err error) {
	epoch, fresh, err := s.db.replicaEpoch()
	if err != nil {
		return 0, err
	}
	if fresh {
		s.log.Debug("new replica epoch (first start, unclean stop or stale state)")
	}
	rid := crdt.ReplicaIDFromBytes(append(append([]byte(nil), seed...), epoch...))
	s.seed = append([]byte(nil), seed...)
	s.pub = pub
	s.clock = crdt.NewClock(rid, s.opts.Now, 0)
	s.doc = crdt.NewDocument(rid, s.clock)
	loaded, err = s.db.load(func(b []byte) error {
		d, err := crdt.DecodeDelta(b, crdt.DefaultLimits)
		if err != nil {
			return err
		}
		_, err = s.doc.Join(d)
		var off *crdt.ClockOffsetError
		if errors.As(err, &off) {
			return nil // our own old clock was ahead; the entry is already reflected or stale
		}
		return err
	})
	if err == nil && s.db.legacy { // a v1 file: rewrite it with checksums now
		b, eerr := crdt.EncodeDelta(s.doc.State())
		if eerr == nil {
			eerr = s.db.snapshot(b)
		}
		if eerr != nil {
			return loaded, fmt.Errorf("state: upgrade %s to %s: %w", s.opts.Path, storeFormat, eerr)
		}
	}
	return loaded, err
}

// Start runs the persister and the watch dispatcher until Close.
func (s *Store) Start() {
	s.started = true
	s.wg.Add(2)
	go s.persistLoop()
	go s.dispatchLoop()
}

// Close stops the loops, writes a final snapshot and closes the file. clean records a
// clean shutdown, so the replica's delta sequence may continue after a restart. Safe twice.
func (s *Store) Close(clean bool) error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		var errs []error
		if s.doc != nil && s.started {
			s.mu.Lock()
			b, eerr := crdt.EncodeDelta(s.doc.State())
			s.mu.Unlock()
			if eerr == nil {
				if serr := s.db.snapshot(b); serr != nil {
					errs = append(errs, serr)
				} else if clean {
					errs = append(errs, s.db.markClean())
				}
			} else {
				errs = append(errs, eerr)
			}
		}
		errs = append(errs, s.db.close())
		err = errors.Join(errs...)
	})
	return err
}

// Clock is the node's hybrid logical clock (stamp creates and claims with it).
func (s *Store) Clock() *crdt.Clock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock
}

// ReplicaID is this node's replica in the document.
func (s *Store) ReplicaID() crdt.ReplicaID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doc.ID()
}

// ---- reading and writing ----

// View is a read-only window on the document, valid only inside View or Update.
type View struct{ doc *crdt.Document }

// GetLWW returns an LWW register's value and timestamp.
func (v *View) GetLWW(coll, key string) ([]byte, crdt.Timestamp, bool) {
	return v.doc.GetLWW(coll, key)
}

// Keys lists a collection's keys in order.
func (v *View) Keys(coll string) []string { return v.doc.Keys(coll) }

// Len is the number of entries in a collection.
func (v *View) Len(coll string) int { return v.doc.Len(coll) }

// Has reports whether an entry exists.
func (v *View) Has(coll, key string) bool { return v.doc.Has(coll, key) }

// GCounter reads a grow-only counter.
func (v *View) GCounter(coll, key string) uint64 { return v.doc.GCounter(coll, key) }

// Bounded reads a bounded counter's value.
func (v *View) Bounded(coll, key string) int64 { return v.doc.Bounded(coll, key) }

// BoundedRights reads the rights replica r holds of a bounded counter.
func (v *View) BoundedRights(coll, key string, r crdt.ReplicaID) uint64 {
	return v.doc.BoundedRights(coll, key, r)
}

// LocalRights reads the rights this replica holds of a bounded counter.
func (v *View) LocalRights(coll, key string) uint64 {
	return v.doc.BoundedRights(coll, key, v.doc.ID())
}

// ReplicaID is this node's replica.
func (v *View) ReplicaID() crdt.ReplicaID { return v.doc.ID() }

// Tx is a View that can also change the document; every change becomes part of one delta
// that is persisted and published when Update returns.
type Tx struct {
	View
	deltas []*crdt.Delta
	colls  []string // collections changed (for the change index)
}

func (t *Tx) add(coll string, d *crdt.Delta, err error) error {
	if err == nil && d != nil {
		t.deltas = append(t.deltas, d)
		if !slices.Contains(t.colls, coll) {
			t.colls = append(t.colls, coll)
		}
	}
	return err
}

// Put writes an LWW register.
func (t *Tx) Put(coll, key string, value []byte) error {
	d, err := t.doc.PutLWW(coll, key, value)
	return t.add(coll, d, err)
}

// Remove deletes an entry (a no-op error-free call when it does not exist is the caller's
// check: Remove of a missing key returns the document's error).
func (t *Tx) Remove(coll, key string) error {
	d, err := t.doc.Remove(coll, key)
	return t.add(coll, d, err)
}

// IncGCounter adds n to a grow-only counter.
func (t *Tx) IncGCounter(coll, key string, n uint64) error {
	d, err := t.doc.IncGCounter(coll, key, n)
	return t.add(coll, d, err)
}

// IncBounded creates n rights of a bounded counter on this replica.
func (t *Tx) IncBounded(coll, key string, n uint64) error {
	d, err := t.doc.IncBounded(coll, key, n)
	return t.add(coll, d, err)
}

// DecBounded consumes n rights this replica holds.
func (t *Tx) DecBounded(coll, key string, n uint64) error {
	d, err := t.doc.DecBounded(coll, key, n)
	return t.add(coll, d, err)
}

// TransferBounded moves n of this replica's rights to replica to.
func (t *Tx) TransferBounded(coll, key string, to crdt.ReplicaID, n uint64) error {
	d, err := t.doc.TransferBounded(coll, key, to, n)
	return t.add(coll, d, err)
}

// View runs fn with the document locked for reading. fn must be quick and must not call
// the Store.
func (s *Store) View(fn func(v *View)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&View{doc: s.doc})
}

// Update runs fn with the document locked; the changes fn makes are batched into one delta,
// persisted and published (also when fn returns an error after some changes: they happened).
func (s *Store) Update(fn func(tx *Tx) error) error {
	_, err := s.UpdateEncoded(fn)
	return err
}

// UpdateEncoded is Update that also returns the encoded delta of the changes (nil when
// nothing changed), e.g. to hand it to a peer directly.
func (s *Store) UpdateEncoded(fn func(tx *Tx) error) ([]byte, error) {
	s.mu.Lock()
	tx := &Tx{View: View{doc: s.doc}}
	err := fn(tx)
	var enc []byte
	if len(tx.deltas) > 0 {
		s.bump(tx.colls) // under mu: the index follows commit order
		d := tx.deltas[0]
		if len(tx.deltas) > 1 {
			var berr error
			if d, berr = crdt.Batch(tx.deltas...); berr != nil {
				s.mu.Unlock()
				return nil, errors.Join(err, fmt.Errorf("state: batch: %w", berr))
			}
		}
		var eerr error
		if enc, eerr = crdt.EncodeDelta(d); eerr != nil {
			s.log.Error("encode delta", "err", eerr)
		} else if s.pub != nil {
			s.pub.Publish(enc)
		}
	}
	s.mu.Unlock()
	if enc != nil {
		s.persist(enc)
	}
	return enc, err
}

// Watch calls fn with the changes every remote delta makes to the given collections (all
// collections when none are given), after the delta is committed, in commit order, from one
// goroutine and with no lock held: fn may read and update the store. fn must not block for
// long (it delays every other watcher).
func (s *Store) Watch(fn func([]crdt.Change), colls ...string) {
	w := &watcher{fn: fn}
	if len(colls) > 0 {
		w.colls = map[string]bool{}
		for _, c := range colls {
			w.colls[c] = true
		}
	}
	s.wmu.Lock()
	s.watchers = append(s.watchers, w)
	s.wmu.Unlock()
}

// ---- remote state (p2p.Replica) ----

// Version is the encoded version vector of the local state.
func (s *Store) Version() []byte {
	s.mu.Lock()
	vv := s.doc.Version()
	s.mu.Unlock()
	b, err := crdt.EncodeVersion(vv)
	if err != nil {
		s.log.Error("encode version vector", "err", err)
	}
	return b
}

// MissingFor is the encoded delta a peer at the (untrusted) encoded version lacks.
func (s *Store) MissingFor(peerVersion []byte) ([]byte, error) {
	vv, err := crdt.DecodeVersion(peerVersion, crdt.DefaultLimits)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	self := s.doc.ID()
	stale := vv[self] > s.doc.Version()[self]
	d := s.doc.DeltaFor(vv)
	s.mu.Unlock()
	if stale {
		s.noteStale(vv[self])
	}
	if d == nil {
		return nil, nil
	}
	return crdt.EncodeDelta(d)
}

// Apply decodes (with limits) and joins a delta or full state received from a peer.
func (s *Store) Apply(from peer.ID, data []byte) error {
	_, _, err := s.apply(from, data)
	return err
}

// ObserveGossipDelay sets fn to receive, for each gossiped delta that changed the document,
// the time from its newest operation's HLC timestamp to its arrival (ApplyGossip).
func (s *Store) ObserveGossipDelay(fn func(time.Duration)) { s.gossipDelay.Store(&fn) }

// ApplyGossip is Apply for a delta that arrived by gossip: when it changed the document,
// the time from its newest operation's HLC timestamp to now goes to the gossip-delay
// observer, clamped at 0 (a sender's clock ahead of ours is skew, not negative latency).
func (s *Store) ApplyGossip(from peer.ID, data []byte) error {
	d, changed, err := s.apply(from, data)
	if err != nil || !changed {
		return err
	}
	if fn := s.gossipDelay.Load(); fn != nil {
		if ts, ok := d.Newest(); ok {
			(*fn)(GossipDelay(s.opts.Now(), ts.Wall))
		}
	}
	return nil
}

// GossipDelay is the time from an HLC wall reading (unix nanoseconds) to now, 0 when the
// reading is ahead of now (clock skew).
func GossipDelay(now time.Time, wall int64) time.Duration {
	return max(0, now.Sub(time.Unix(0, wall)))
}

func (s *Store) apply(from peer.ID, data []byte) (*crdt.Delta, bool, error) {
	d, err := crdt.DecodeDelta(data, crdt.DefaultLimits)
	if err != nil {
		return nil, false, fmt.Errorf("delta from %s: %w", from, err)
	}
	s.mu.Lock()
	changes, err := s.doc.Join(d)
	if err == nil && len(changes) > 0 {
		s.enqueue(changes) // under mu: the queue keeps commit order
		s.bump(changedColls(changes))
	}
	s.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	if len(changes) > 0 {
		s.persist(data)
	}
	return d, len(changes) > 0, nil
}

func (s *Store) enqueue(changes []crdt.Change) {
	s.wmu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, changes)
	}
	s.wmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) dispatchLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			s.wmu.Lock()
			s.stopped, s.queue = true, nil
			s.wmu.Unlock()
			return
		case <-s.wake:
		}
		for {
			s.wmu.Lock()
			if len(s.queue) == 0 {
				s.wmu.Unlock()
				break
			}
			batch := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			ws := s.watchers
			s.wmu.Unlock()
			for _, w := range ws {
				if w.colls == nil {
					w.fn(batch)
					continue
				}
				var mine []crdt.Change
				for _, c := range batch {
					if w.colls[c.Collection] {
						mine = append(mine, c)
					}
				}
				if len(mine) > 0 {
					w.fn(mine)
				}
			}
		}
	}
}

// ---- persistence ----

func (s *Store) persist(b []byte) {
	select {
	case s.persistCh <- b:
	default:
		// The persister is far behind: write synchronously rather than drop.
		if err := s.db.appendDeltas([][]byte{b}); err != nil {
			s.log.Error("persist delta", "err", err)
		}
	}
}

// persistLoop batches deltas into one bbolt transaction and compacts the log periodically.
func (s *Store) persistLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SnapshotInterval)
	defer t.Stop()
	flush := func(first []byte) {
		batch := [][]byte{first}
	more:
		for len(batch) < 1024 {
			select {
			case b := <-s.persistCh:
				batch = append(batch, b)
			default:
				break more
			}
		}
		if err := s.db.appendDeltas(batch); err != nil {
			s.log.Error("persist deltas", "err", err)
		}
	}
	for {
		select {
		case <-s.stop:
			for {
				select {
				case b := <-s.persistCh:
					flush(b)
				default:
					return
				}
			}
		case b := <-s.persistCh:
			flush(b)
		case <-t.C:
			if s.db.logLen() == 0 {
				continue
			}
			s.mu.Lock()
			b, err := crdt.EncodeDelta(s.doc.State())
			s.mu.Unlock()
			if err == nil {
				err = s.db.snapshot(b)
			}
			if err != nil {
				s.log.Error("snapshot state", "err", err)
			}
		}
	}
}

// noteStale handles a peer holding later deltas of this replica than this store: the
// state file is older than what the cluster saw of this node (a restore from a backup
// taken after a clean stop). New writes would reuse sequence numbers peers already have and
// be ignored, so the store continues at once as a new replica: a new epoch, the current
// state joined into a fresh document, persisted. What the old replica held under its ID
// (quota rights) stays with it.
func (s *Store) noteStale(peerSeq uint64) {
	if err := s.rotate(peerSeq); err != nil {
		s.log.Error("continue as a new replica after finding the state stale", "err", err)
	}
}

func (s *Store) rotate(peerSeq uint64) error {
	epoch := make([]byte, 16)
	if _, err := rand.Read(epoch); err != nil {
		return err
	}
	rid := crdt.ReplicaIDFromBytes(append(append([]byte(nil), s.seed...), epoch...))
	s.mu.Lock()
	old := s.doc.ID()
	if s.doc.Version()[old] >= peerSeq { // rotated already, or caught up meanwhile
		s.mu.Unlock()
		return nil
	}
	clock := crdt.NewClock(rid, s.opts.Now, 0)
	doc := crdt.NewDocument(rid, clock)
	if _, err := doc.Join(s.doc.State()); err != nil {
		var off *crdt.ClockOffsetError
		if !errors.As(err, &off) {
			s.mu.Unlock()
			return err
		}
	}
	s.doc, s.clock = doc, clock
	b, err := crdt.EncodeDelta(doc.State())
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.Warn("this node's state was older than the cluster's view of it (restored from a backup?): continuing as a new replica",
		"state_file", s.opts.Path, "peer_seq", peerSeq)
	if err := s.db.setEpoch(epoch); err != nil {
		return err
	}
	return s.db.snapshot(b)
}
