package crdt

import "sort"

// Delta is a unit of replication: either a batch of operation deltas (each
// the delta-state produced by one local mutation, identified by its dot) or a
// document's full state. Both are joined with Document.Join. A Delta is
// immutable once returned; do not modify values read from it.
type Delta struct {
	from ReplicaID
	ops  []op       // op deltas, when full == nil
	full *fullState // full state, or nil
}

// op is the delta-state of one mutation of entry (coll, key) issued with dot
// it.dot at time it.ts(): drop the items whose dots are in covered, then add
// it unless it.kind == 0. Its causal context is covered plus it.dot.
type op struct {
	coll, key string
	it        item
	covered   []Dot
}

func (o *op) dot() Dot { return o.it.dot }

func (o *op) size() int {
	return 40 + len(o.coll) + len(o.key) + itemSize(&o.it) + 16*len(o.covered)
}

// fullState is a document's complete state: entries, the causal context of
// the CRDT (every dot whose effect is included) and the set of operation
// deltas applied (the origin version vector with gaps).
type fullState struct {
	colls   map[string]map[string]*entry
	ctx     *CausalContext
	applied *CausalContext
}

// Origin returns the replica that produced the delta: the mutating replica
// for a single local mutation, the sender for batches and full states.
func (d *Delta) Origin() ReplicaID { return d.from }

// Newest returns the newest HLC timestamp of the operations in a batch; ok is false for a
// full state or an empty batch.
func (d *Delta) Newest() (ts Timestamp, ok bool) {
	if d.full != nil {
		return Timestamp{}, false
	}
	for i := range d.ops {
		t := d.ops[i].it.ts()
		if !ok || t.Wall > ts.Wall || t.Wall == ts.Wall && t.Logical > ts.Logical {
			ts, ok = t, true
		}
	}
	return ts, ok
}

// IsFull reports whether the delta is a full state.
func (d *Delta) IsFull() bool { return d.full != nil }

// Len returns the number of operations in an operation batch, or the number
// of entries of a full state.
func (d *Delta) Len() int {
	if d.full == nil {
		return len(d.ops)
	}
	n := 0
	for _, c := range d.full.colls {
		n += len(c)
	}
	return n
}

// Dots returns the dots (origin, seq) of the operations in a batch, sorted.
// A full state returns nil; use Version.
func (d *Delta) Dots() []Dot {
	if d.full != nil {
		return nil
	}
	out := make([]Dot, len(d.ops))
	for i := range d.ops {
		out[i] = d.ops[i].dot()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	return out
}

// Version returns, for a full state, the version vector of the operations it
// includes; for a batch, the highest seq per origin it carries.
func (d *Delta) Version() VersionVector {
	if d.full != nil {
		return d.full.applied.Version()
	}
	v := VersionVector{}
	for i := range d.ops {
		dt := d.ops[i].dot()
		if dt.Counter > v[dt.Replica] {
			v[dt.Replica] = dt.Counter
		}
	}
	return v
}

// ApproxSize estimates the encoded size in bytes without encoding.
func (d *Delta) ApproxSize() int {
	n := 16
	if d.full == nil {
		for i := range d.ops {
			n += d.ops[i].size()
		}
		return n
	}
	for c, es := range d.full.colls {
		n += 8 + len(c)
		for k, e := range es {
			n += 4 + len(k) + e.size()
		}
	}
	return n + 16*(len(d.full.ctx.vv)+len(d.full.ctx.cloud)+len(d.full.applied.vv)+len(d.full.applied.cloud))
}

// Batch concatenates operation deltas into one delta (from the origin of the
// first), for publishing several local mutations at once. Joining the batch
// is equivalent to joining each delta. Full states return ErrNotBatchable.
func Batch(deltas ...*Delta) (*Delta, error) {
	out := &Delta{}
	for _, d := range deltas {
		if d == nil {
			continue
		}
		if d.full != nil {
			return nil, ErrNotBatchable
		}
		if out.from == 0 {
			out.from = d.from
		}
		out.ops = append(out.ops, d.ops...)
	}
	return out, nil
}
