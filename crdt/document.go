package crdt

import (
	"fmt"
	"math"
	"sort"
)

// Config tunes a Document. The zero value of a field selects its default.
type Config struct {
	// LogMaxDeltas bounds the number of operation deltas kept for delta
	// anti-entropy (DeltaFor). Default 16384: at 100 mutations/s across the
	// cluster, about 160 s of history before peers fall back to full state.
	LogMaxDeltas int
	// LogMaxBytes bounds the approximate encoded size of the logged deltas.
	// Default 16 MiB.
	LogMaxBytes int
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{LogMaxDeltas: 16384, LogMaxBytes: 16 << 20}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	if c.LogMaxDeltas < 0 || c.LogMaxBytes < 0 {
		return fmt.Errorf("%w: negative log bound", ErrInvalidArgument)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := DefaultConfig()
	if c.LogMaxDeltas == 0 {
		c.LogMaxDeltas = def.LogMaxDeltas
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = def.LogMaxBytes
	}
	return c
}

// Change names an entry whose state changed during a Join. Removed is true
// when the entry no longer exists afterwards.
type Change struct {
	Collection, Key string
	Removed         bool
}

// Document is a replicated set of named collections, each an observed-remove
// map from string keys to CRDT values (see the package documentation). It is
// deterministic and not safe for concurrent use: the caller serializes calls.
type Document struct {
	id    ReplicaID
	clock *Clock
	cfg   Config

	seq     uint64                       // last dot counter issued by this replica
	colls   map[string]map[string]*entry // collection -> key -> entry (never empty)
	ctx     CausalContext                // dots whose effects the entries include
	applied CausalContext                // operation deltas applied (origin, seq)

	log      map[Dot]op // operation deltas retained for DeltaFor
	logQ     []Dot      // insertion order of log; logQ[logHead:] are live
	logHead  int
	logBytes int
}

// NewDocument returns an empty document for replica id with DefaultConfig.
func NewDocument(id ReplicaID, clock *Clock) *Document {
	d, err := NewDocumentWithConfig(id, clock, Config{})
	if err != nil {
		panic(err) // unreachable: the zero Config is valid
	}
	return d
}

// NewDocumentWithConfig returns an empty document for replica id.
func NewDocumentWithConfig(id ReplicaID, clock *Clock, cfg Config) (*Document, error) {
	if id == 0 {
		return nil, fmt.Errorf("%w: replica id 0", ErrInvalidArgument)
	}
	if clock == nil {
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidArgument)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Document{
		id:    id,
		clock: clock,
		cfg:   cfg.withDefaults(),
		colls: make(map[string]map[string]*entry),
		log:   make(map[Dot]op),
	}, nil
}

// ID returns the document's replica ID.
func (d *Document) ID() ReplicaID { return d.id }

// Seq returns the sequence number of the last local mutation.
func (d *Document) Seq() uint64 { return d.seq }

// Version returns the version vector of the operation deltas applied: per
// origin, the highest seq such that every seq up to it was applied (directly
// or through a full state).
func (d *Document) Version() VersionVector { return d.applied.Version() }

// Context returns a copy of the document's causal context (for tests and
// metrics: its cloud length measures pending gaps).
func (d *Document) Context() *CausalContext { return d.ctx.Clone() }

// Collections returns the names of non-empty collections, sorted.
func (d *Document) Collections() []string {
	out := make([]string, 0, len(d.colls))
	for c := range d.colls {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Keys returns the keys of a collection, sorted.
func (d *Document) Keys(collection string) []string {
	cm := d.colls[collection]
	out := make([]string, 0, len(cm))
	for k := range cm {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Len returns the number of keys in a collection.
func (d *Document) Len(collection string) int { return len(d.colls[collection]) }

// Has reports whether the entry exists (holds a value of any kind).
func (d *Document) Has(collection, key string) bool { return d.entry(collection, key) != nil }

// Kinds returns the kinds of value the entry holds, sorted.
func (d *Document) Kinds(collection, key string) []Kind {
	e := d.entry(collection, key)
	if e == nil {
		return nil
	}
	var out []Kind
	for i := range e.items {
		if k := e.items[i].kind; len(out) == 0 || out[len(out)-1] != k {
			out = append(out, k)
		}
	}
	return out
}

func (d *Document) entry(collection, key string) *entry {
	if cm := d.colls[collection]; cm != nil {
		return cm[key]
	}
	return nil
}

// ---- mutators ----

func checkNames(collection, key string) error {
	if collection == "" || key == "" {
		return fmt.Errorf("%w: empty collection or key", ErrInvalidArgument)
	}
	return nil
}

// mutate issues the next dot and applies the op (drop covered, add it) locally.
func (d *Document) mutate(collection, key string, it item, covered []Dot) *Delta {
	d.seq++
	ts := d.clock.Now()
	it.dot = Dot{d.id, d.seq}
	it.wall, it.logical = ts.Wall, ts.Logical
	o := op{coll: collection, key: key, it: it, covered: covered}
	d.applyOp(&o)
	d.logAppend(o)
	return &Delta{from: d.id, ops: []op{o}}
}

// PutLWW writes value to the LWW register at (collection, key). The write
// supersedes every write this replica has seen; among concurrent writes the
// one with the greatest timestamp wins. value is copied.
func (d *Document) PutLWW(collection, key string, value []byte) (*Delta, error) {
	if err := checkNames(collection, key); err != nil {
		return nil, err
	}
	e := d.entry(collection, key)
	v := append(make([]byte, 0, len(value)), value...)
	return d.mutate(collection, key, item{kind: KindLWW, val: v}, e.dotsOf(KindLWW, nil)), nil
}

// GetLWW returns the LWW register's winning value and its timestamp.
// The returned slice must not be modified.
func (d *Document) GetLWW(collection, key string) (value []byte, ts Timestamp, ok bool) {
	it := d.entry(collection, key).lww()
	if it == nil {
		return nil, Timestamp{}, false
	}
	return it.val, it.ts(), true
}

// PutMV writes value to the multi-value register at (collection, key),
// superseding every value this replica has seen. value is copied.
func (d *Document) PutMV(collection, key string, value []byte) (*Delta, error) {
	if err := checkNames(collection, key); err != nil {
		return nil, err
	}
	e := d.entry(collection, key)
	v := append(make([]byte, 0, len(value)), value...)
	return d.mutate(collection, key, item{kind: KindMV, val: v}, e.dotsOf(KindMV, nil)), nil
}

// GetMV returns the multi-value register's values: one per concurrent write
// not superseded, ordered by write timestamp. The slices must not be modified.
func (d *Document) GetMV(collection, key string) [][]byte {
	its := d.entry(collection, key).ofKind(KindMV)
	if len(its) == 0 {
		return nil
	}
	out := make([][]byte, len(its))
	for i, it := range its {
		out[i] = it.val
	}
	return out
}

// AddToSet adds elem to the add-wins set at (collection, key).
func (d *Document) AddToSet(collection, key, elem string) (*Delta, error) {
	if err := checkNames(collection, key); err != nil {
		return nil, err
	}
	e := d.entry(collection, key)
	covered := e.dotsOf(KindSet, func(it *item) bool { return string(it.val) == elem })
	return d.mutate(collection, key, item{kind: KindSet, val: []byte(elem)}, covered), nil
}

// RemoveFromSet removes elem from the set: the adds this replica has seen
// are cancelled; a concurrent add wins. Removing an absent element returns a
// delta that changes nothing.
func (d *Document) RemoveFromSet(collection, key, elem string) (*Delta, error) {
	if err := checkNames(collection, key); err != nil {
		return nil, err
	}
	e := d.entry(collection, key)
	covered := e.dotsOf(KindSet, func(it *item) bool { return string(it.val) == elem })
	return d.mutate(collection, key, item{}, covered), nil
}

// SetMembers returns the set's elements, sorted.
func (d *Document) SetMembers(collection, key string) []string {
	e := d.entry(collection, key)
	if e == nil {
		return nil
	}
	var out []string
	for i := range e.items {
		it := &e.items[i]
		if it.kind == KindSet && (len(out) == 0 || out[len(out)-1] != string(it.val)) {
			out = append(out, string(it.val))
		}
	}
	return out
}

// SetContains reports whether elem is in the set.
func (d *Document) SetContains(collection, key, elem string) bool {
	e := d.entry(collection, key)
	if e == nil {
		return false
	}
	for i := range e.items {
		if e.items[i].kind == KindSet && string(e.items[i].val) == elem {
			return true
		}
	}
	return false
}

// counterOp replaces this replica's row of counter kind k with f(copy of row).
func (d *Document) counterOp(collection, key string, k Kind, f func(e *entry, row *counterRow) error) (*Delta, error) {
	if err := checkNames(collection, key); err != nil {
		return nil, err
	}
	e := d.entry(collection, key)
	row := &counterRow{}
	if old := e.row(k, d.id); old != nil {
		row = old.ctr.clone()
	}
	if err := f(e, row); err != nil {
		return nil, err
	}
	covered := e.dotsOf(k, func(it *item) bool { return it.dot.Replica == d.id })
	return d.mutate(collection, key, item{kind: k, ctr: row}, covered), nil
}

func addU64(a, b uint64) (uint64, error) {
	if a > math.MaxUint64-b {
		return 0, ErrOverflow
	}
	return a + b, nil
}

// IncGCounter adds n to the grow-only counter at (collection, key).
func (d *Document) IncGCounter(collection, key string, n uint64) (*Delta, error) {
	return d.counterOp(collection, key, KindGCounter, func(_ *entry, r *counterRow) (err error) {
		r.P, err = addU64(r.P, n)
		return err
	})
}

// GCounter returns the grow-only counter's value.
func (d *Document) GCounter(collection, key string) uint64 {
	var s uint64
	for _, r := range d.entry(collection, key).rows(KindGCounter) {
		s += r.P
	}
	return s
}

// AddPNCounter adds n (which may be negative) to the PN-counter.
func (d *Document) AddPNCounter(collection, key string, n int64) (*Delta, error) {
	return d.counterOp(collection, key, KindPNCounter, func(_ *entry, r *counterRow) (err error) {
		if n >= 0 {
			r.P, err = addU64(r.P, uint64(n))
		} else {
			r.N, err = addU64(r.N, uint64(-(n+1))+1)
		}
		return err
	})
}

// PNCounter returns the PN-counter's value.
func (d *Document) PNCounter(collection, key string) int64 {
	return d.netCount(collection, key, KindPNCounter)
}

// netCount sums increments minus decrements over every replica's row of a counter.
func (d *Document) netCount(collection, key string, kind Kind) int64 {
	var p, n uint64
	for _, r := range d.entry(collection, key).rows(kind) {
		p += r.P
		n += r.N
	}
	return int64(p - n)
}

// IncBounded increments the bounded counter by n; the new n rights belong
// to this replica.
func (d *Document) IncBounded(collection, key string, n uint64) (*Delta, error) {
	return d.counterOp(collection, key, KindBounded, func(_ *entry, r *counterRow) (err error) {
		r.P, err = addU64(r.P, n)
		return err
	})
}

// DecBounded decrements the bounded counter by n, consuming local rights.
// It fails with a *BoundError (errors.Is ErrInsufficientRights), changing
// nothing, when this replica holds fewer than n rights, so the value never
// drops below zero whatever other replicas do concurrently.
func (d *Document) DecBounded(collection, key string, n uint64) (*Delta, error) {
	return d.counterOp(collection, key, KindBounded, func(e *entry, r *counterRow) (err error) {
		if have := boundedRights(e.rows(KindBounded), d.id); have < n {
			return &BoundError{Collection: collection, Key: key, Replica: d.id, Requested: n, Available: have}
		}
		r.N, err = addU64(r.N, n)
		return err
	})
}

// TransferBounded moves n of this replica's rights to replica to. It fails
// with a *BoundError when this replica holds fewer than n rights.
func (d *Document) TransferBounded(collection, key string, to ReplicaID, n uint64) (*Delta, error) {
	if to == 0 || to == d.id {
		return nil, fmt.Errorf("%w: transfer to replica %s", ErrInvalidArgument, to)
	}
	return d.counterOp(collection, key, KindBounded, func(e *entry, r *counterRow) error {
		if have := boundedRights(e.rows(KindBounded), d.id); have < n {
			return &BoundError{Collection: collection, Key: key, Replica: d.id, Requested: n, Available: have}
		}
		i := sort.Search(len(r.Out), func(i int) bool { return r.Out[i].To >= to })
		if i < len(r.Out) && r.Out[i].To == to {
			v, err := addU64(r.Out[i].N, n)
			if err != nil {
				return err
			}
			r.Out[i].N = v
			return nil
		}
		r.Out = append(r.Out, transfer{})
		copy(r.Out[i+1:], r.Out[i:])
		r.Out[i] = transfer{To: to, N: n}
		return nil
	})
}

// Bounded returns the bounded counter's value (increments minus decrements).
func (d *Document) Bounded(collection, key string) int64 {
	return d.netCount(collection, key, KindBounded)
}

// BoundedRights returns the rights replica r holds on the bounded counter,
// as far as this replica knows.
func (d *Document) BoundedRights(collection, key string, r ReplicaID) uint64 {
	return boundedRights(d.entry(collection, key).rows(KindBounded), r)
}

// Remove removes the entry (all its kinds) as observed by this replica.
// A concurrent update on another replica survives (update-wins): see the
// package documentation. Removing an absent entry returns a delta that
// changes nothing.
func (d *Document) Remove(collection, key string) (*Delta, error) {
	if err := checkNames(collection, key); err != nil {
		return nil, err
	}
	return d.mutate(collection, key, item{}, d.entry(collection, key).dotsOf(0, nil)), nil
}

// ---- replication ----

// applyOp joins one operation delta; the caller checked it is not applied.
func (d *Document) applyOp(o *op) (changed, removed bool) {
	cm := d.colls[o.coll]
	var e *entry
	if cm != nil {
		e = cm[o.key]
	}
	existed := e != nil
	if e != nil && len(o.covered) > 0 {
		changed = e.removeDots(o.covered)
	}
	dot := o.it.dot
	if o.it.kind != 0 && !d.ctx.Contains(dot) {
		if e == nil {
			e = &entry{}
			if cm == nil {
				cm = make(map[string]*entry)
				d.colls[o.coll] = cm
			}
			cm[o.key] = e
		}
		if e.insert(o.it) {
			changed = true
		}
	}
	d.ctx.Add(dot)
	for _, c := range o.covered {
		d.ctx.Add(c)
		if c.Replica == d.id && c.Counter > d.seq {
			d.seq = c.Counter
		}
	}
	d.applied.Add(dot)
	if dot.Replica == d.id && dot.Counter > d.seq {
		d.seq = dot.Counter
	}
	if e != nil && len(e.items) == 0 {
		delete(cm, o.key)
		if len(cm) == 0 {
			delete(d.colls, o.coll)
		}
		e = nil
	}
	return changed, existed && e == nil
}

// Join joins a delta (an operation batch or a full state) into the document
// and returns the entries whose state changed, sorted by collection and key.
// Joining is idempotent and order-insensitive. Before changing anything it
// observes the delta's newest timestamp with the clock; a *ClockOffsetError
// rejects the whole delta. Joined operations are logged for DeltaFor, so
// they are forwarded transitively.
func (d *Document) Join(delta *Delta) ([]Change, error) {
	if delta == nil {
		return nil, nil
	}
	if delta.full != nil {
		return d.joinFull(delta.full)
	}
	var newest Timestamp
	fresh := 0
	for i := range delta.ops {
		o := &delta.ops[i]
		if d.applied.Contains(o.it.dot) {
			continue
		}
		fresh++
		if ts := o.it.ts(); newest.Less(ts) {
			newest = ts
		}
	}
	if fresh == 0 {
		return nil, nil
	}
	if err := d.clock.Observe(newest); err != nil {
		return nil, err
	}
	var changes []Change
	for i := range delta.ops {
		o := &delta.ops[i]
		if d.applied.Contains(o.it.dot) {
			continue // duplicate within the batch
		}
		changed, removed := d.applyOp(o)
		d.logAppend(*o)
		if changed {
			changes = append(changes, Change{Collection: o.coll, Key: o.key, Removed: removed})
		}
	}
	return normalizeChanges(changes, d), nil
}

// normalizeChanges sorts, deduplicates and fixes Removed to the final state.
func normalizeChanges(cs []Change, d *Document) []Change {
	if len(cs) <= 1 {
		return cs
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Collection != cs[j].Collection {
			return cs[i].Collection < cs[j].Collection
		}
		return cs[i].Key < cs[j].Key
	})
	out := cs[:0]
	for _, c := range cs {
		if n := len(out); n > 0 && out[n-1].Collection == c.Collection && out[n-1].Key == c.Key {
			continue
		}
		c.Removed = !d.Has(c.Collection, c.Key)
		out = append(out, c)
	}
	return out
}

func (d *Document) joinFull(fs *fullState) ([]Change, error) {
	var newest Timestamp
	for _, es := range fs.colls {
		for _, e := range es {
			for i := range e.items {
				if ts := e.items[i].ts(); newest.Less(ts) {
					newest = ts
				}
			}
		}
	}
	if !newest.IsZero() {
		if err := d.clock.Observe(newest); err != nil {
			return nil, err
		}
	}
	var changes []Change
	// Local entries the state does not hold: drop what the state has seen.
	for coll, cm := range d.colls {
		rs := fs.colls[coll]
		for key, e := range cm {
			if _, ok := rs[key]; ok {
				continue
			}
			if e.filter(fs.ctx) {
				removed := len(e.items) == 0
				if removed {
					delete(cm, key)
				}
				changes = append(changes, Change{Collection: coll, Key: key, Removed: removed})
			}
		}
		if len(cm) == 0 {
			delete(d.colls, coll)
		}
	}
	for coll, rs := range fs.colls {
		cm := d.colls[coll]
		for key, re := range rs {
			var le *entry
			if cm != nil {
				le = cm[key]
			}
			merged, changed := joinEntry(le, re, &d.ctx, fs.ctx)
			if merged != nil && le == nil {
				if cm == nil {
					cm = make(map[string]*entry)
					d.colls[coll] = cm
				}
				cm[key] = merged
			}
			if merged == nil && le != nil {
				delete(cm, key)
			}
			if changed {
				changes = append(changes, Change{Collection: coll, Key: key, Removed: merged == nil})
			}
		}
		if cm != nil && len(cm) == 0 {
			delete(d.colls, coll)
		}
	}
	d.ctx.Merge(fs.ctx)
	d.applied.Merge(fs.applied)
	if m := d.ctx.Max(d.id); m > d.seq {
		d.seq = m
	}
	if m := d.applied.Max(d.id); m > d.seq {
		d.seq = m
	}
	sort.Slice(changes, func(i, j int) bool {
		if changes[i].Collection != changes[j].Collection {
			return changes[i].Collection < changes[j].Collection
		}
		return changes[i].Key < changes[j].Key
	})
	return changes, nil
}

// State returns the document's full state as a delta (a deep copy).
func (d *Document) State() *Delta {
	fs := &fullState{
		colls:   make(map[string]map[string]*entry, len(d.colls)),
		ctx:     d.ctx.Clone(),
		applied: d.applied.Clone(),
	}
	for coll, cm := range d.colls {
		out := make(map[string]*entry, len(cm))
		for k, e := range cm {
			out[k] = e.clone()
		}
		fs.colls[coll] = out
	}
	return &Delta{from: d.id, full: fs}
}

// DeltaFor returns what a peer whose version vector is peer is missing: the
// logged operation deltas it lacks, batched, or the full state when the log
// no longer holds some of them (or the batch would not be smaller than the
// state). It returns nil when the peer is missing nothing.
func (d *Document) DeltaFor(peer VersionVector) *Delta {
	maxes := make(map[ReplicaID]uint64, len(d.applied.vv))
	for r, n := range d.applied.vv {
		maxes[r] = n
	}
	for dt := range d.applied.cloud {
		if dt.Counter > maxes[dt.Replica] {
			maxes[dt.Replica] = dt.Counter
		}
	}
	entries := 0
	for _, cm := range d.colls {
		entries += len(cm)
	}
	var ops []op
	for r, hi := range maxes {
		lo := peer[r]
		if hi <= lo {
			continue
		}
		if hi-lo > uint64(len(d.log)) {
			return d.State()
		}
		for s := lo + 1; s <= hi; s++ {
			dt := Dot{r, s}
			if !d.applied.Contains(dt) {
				continue // a gap here too; someone else will fill it
			}
			o, ok := d.log[dt]
			if !ok {
				return d.State()
			}
			ops = append(ops, o)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if len(ops) > 2*entries+16 {
		return d.State()
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].it.dot.less(ops[j].it.dot) })
	return &Delta{from: d.id, ops: ops}
}

func (d *Document) logAppend(o op) {
	dot := o.it.dot
	if _, dup := d.log[dot]; dup {
		return
	}
	d.log[dot] = o
	d.logQ = append(d.logQ, dot)
	d.logBytes += o.size()
	for len(d.log) > d.cfg.LogMaxDeltas || (d.logBytes > d.cfg.LogMaxBytes && len(d.log) > 0) {
		old := d.logQ[d.logHead]
		d.logQ[d.logHead] = Dot{}
		d.logHead++
		if lo, ok := d.log[old]; ok {
			d.logBytes -= lo.size()
			delete(d.log, old)
		}
	}
	if d.logHead > 1024 && d.logHead*2 > len(d.logQ) {
		n := copy(d.logQ, d.logQ[d.logHead:])
		d.logQ = d.logQ[:n]
		d.logHead = 0
	}
}

// LogLen returns the number of operation deltas retained for DeltaFor.
func (d *Document) LogLen() int { return len(d.log) }
