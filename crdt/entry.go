package crdt

import (
	"bytes"
	"fmt"
	"sort"
)

// Kind names the CRDT type of a value held in a document entry. One entry
// (collection, key) may hold values of several kinds at once, each an
// independent CRDT (as in Riak's maps, where fields are keyed by name and
// type); Remove removes them all.
type Kind uint8

const (
	KindLWW       Kind = 1 // last-writer-wins register of bytes
	KindMV        Kind = 2 // multi-value register of bytes
	KindSet       Kind = 3 // add-wins observed-remove set of strings
	KindGCounter  Kind = 4 // grow-only counter
	KindPNCounter Kind = 5 // increment/decrement counter
	KindBounded   Kind = 6 // bounded counter (value never below 0)
	maxKind            = KindBounded
)

func (k Kind) String() string {
	switch k {
	case KindLWW:
		return "lww"
	case KindMV:
		return "mvreg"
	case KindSet:
		return "orset"
	case KindGCounter:
		return "gcounter"
	case KindPNCounter:
		return "pncounter"
	case KindBounded:
		return "bcounter"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) isCounter() bool { return k >= KindGCounter && k <= KindBounded }

// item is one dotted value in an entry. Every kind is stored as a dot store:
//   - LWW and MV: one item per unsuperseded write (val = value); the LWW read
//     picks the greatest timestamp, the MV read returns them all.
//   - set: one item per (element, add) still alive (val = element).
//   - counters: one item per replica holding that replica's cumulative row.
type item struct {
	dot     Dot
	wall    int64
	logical uint32
	kind    Kind
	val     []byte
	ctr     *counterRow
}

func (it *item) ts() Timestamp {
	return Timestamp{Wall: it.wall, Logical: it.logical, Replica: it.dot.Replica}
}

// counterRow is one replica's cumulative contribution to a counter: P
// increments, N decrements and, for bounded counters, rights transferred to
// other replicas (sorted by replica). Rows are never mutated in place.
type counterRow struct {
	P, N uint64
	Out  []transfer
}

type transfer struct {
	To ReplicaID
	N  uint64
}

func (r *counterRow) outTo(to ReplicaID) uint64 {
	for _, t := range r.Out {
		if t.To == to {
			return t.N
		}
	}
	return 0
}

func (r *counterRow) outSum() (s uint64) {
	for _, t := range r.Out {
		s += t.N
	}
	return s
}

func (r *counterRow) clone() *counterRow {
	c := &counterRow{P: r.P, N: r.N}
	if len(r.Out) > 0 {
		c.Out = append([]transfer(nil), r.Out...)
	}
	return c
}

// compareItems orders items by (kind, element for sets, dot).
func compareItems(a, b *item) int {
	if a.kind != b.kind {
		if a.kind < b.kind {
			return -1
		}
		return 1
	}
	if a.kind == KindSet {
		if c := bytes.Compare(a.val, b.val); c != 0 {
			return c
		}
	}
	switch {
	case a.dot.less(b.dot):
		return -1
	case b.dot.less(a.dot):
		return 1
	}
	return 0
}

// entry is the value of one (collection, key): its items sorted by
// compareItems. An entry with no items does not exist.
type entry struct {
	items []item
}

func (e *entry) clone() *entry {
	return &entry{items: append([]item(nil), e.items...)}
}

// insert adds it in order unless an item with its dot is present.
func (e *entry) insert(it item) bool {
	i := sort.Search(len(e.items), func(i int) bool { return compareItems(&e.items[i], &it) >= 0 })
	if i < len(e.items) && e.items[i].dot == it.dot {
		return false
	}
	// A hostile peer could reuse a dot under another kind/element; keep dots unique.
	for j := range e.items {
		if e.items[j].dot == it.dot {
			return false
		}
	}
	e.items = append(e.items, item{})
	copy(e.items[i+1:], e.items[i:])
	e.items[i] = it
	return true
}

// removeDots deletes the items whose dot is in dots.
func (e *entry) removeDots(dots []Dot) bool {
	if len(dots) == 0 || len(e.items) == 0 {
		return false
	}
	var set map[Dot]struct{}
	if len(dots) > 8 {
		set = make(map[Dot]struct{}, len(dots))
		for _, d := range dots {
			set[d] = struct{}{}
		}
	}
	out := e.items[:0]
	for _, it := range e.items {
		var hit bool
		if set != nil {
			_, hit = set[it.dot]
		} else {
			for _, d := range dots {
				if d == it.dot {
					hit = true
					break
				}
			}
		}
		if !hit {
			out = append(out, it)
		}
	}
	changed := len(out) != len(e.items)
	clear(e.items[len(out):])
	e.items = out
	return changed
}

// filter drops the items whose dot is in ctx (items the other side has seen
// and no longer holds).
func (e *entry) filter(ctx *CausalContext) bool {
	out := e.items[:0]
	for _, it := range e.items {
		if !ctx.Contains(it.dot) {
			out = append(out, it)
		}
	}
	changed := len(out) != len(e.items)
	clear(e.items[len(out):])
	e.items = out
	return changed
}

// joinEntry joins remote entry r (context rctx) into local entry l (context
// lctx) following the dot-store join: an item survives if both sides hold
// it, or one side holds it and the other side's context lacks its dot.
// l may be nil. It returns the merged entry (nil if empty) and whether the
// local entry changed.
func joinEntry(l, r *entry, lctx, rctx *CausalContext) (*entry, bool) {
	var litems []item
	if l != nil {
		litems = l.items
	}
	out := make([]item, 0, max(len(litems), len(r.items)))
	changed := false
	i, j := 0, 0
	for i < len(litems) || j < len(r.items) {
		var c int
		switch {
		case i == len(litems):
			c = 1
		case j == len(r.items):
			c = -1
		default:
			c = compareItems(&litems[i], &r.items[j])
		}
		switch {
		case c == 0:
			out = append(out, litems[i])
			i++
			j++
		case c < 0:
			if !rctx.Contains(litems[i].dot) {
				out = append(out, litems[i])
			} else {
				changed = true
			}
			i++
		default:
			if !lctx.Contains(r.items[j].dot) {
				out = append(out, r.items[j])
				changed = true
			}
			j++
		}
	}
	if len(out) == 0 {
		return nil, changed
	}
	if l == nil {
		return &entry{items: out}, changed
	}
	l.items = out
	return l, changed
}

// dotsOf returns the dots of the items of kind k (all kinds when k == 0)
// accepted by keep (all when nil).
func (e *entry) dotsOf(k Kind, keep func(*item) bool) []Dot {
	if e == nil {
		return nil
	}
	var out []Dot
	for i := range e.items {
		it := &e.items[i]
		if (k == 0 || it.kind == k) && (keep == nil || keep(it)) {
			out = append(out, it.dot)
		}
	}
	return out
}

func (e *entry) has(k Kind) bool {
	if e == nil {
		return false
	}
	for i := range e.items {
		if e.items[i].kind == k {
			return true
		}
	}
	return false
}

// lww returns the LWW item with the greatest timestamp.
func (e *entry) lww() *item {
	if e == nil {
		return nil
	}
	var best *item
	for i := range e.items {
		it := &e.items[i]
		if it.kind == KindLWW && (best == nil || best.ts().Less(it.ts())) {
			best = it
		}
	}
	return best
}

// ofKind returns the items of kind k ordered by timestamp.
func (e *entry) ofKind(k Kind) []*item {
	if e == nil {
		return nil
	}
	var out []*item
	for i := range e.items {
		if e.items[i].kind == k {
			out = append(out, &e.items[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ts().Less(out[j].ts()) })
	return out
}

// row returns replica r's counter row of kind k (the one with the highest
// dot, should a hostile peer have sent several) or nil.
func (e *entry) row(k Kind, r ReplicaID) *item {
	if e == nil {
		return nil
	}
	var best *item
	for i := range e.items {
		it := &e.items[i]
		if it.kind == k && it.dot.Replica == r && it.ctr != nil && (best == nil || best.dot.Counter < it.dot.Counter) {
			best = it
		}
	}
	return best
}

// rows returns one row per replica for counter kind k.
func (e *entry) rows(k Kind) map[ReplicaID]*counterRow {
	if e == nil {
		return nil
	}
	best := map[ReplicaID]*item{}
	for i := range e.items {
		it := &e.items[i]
		if it.kind != k || it.ctr == nil {
			continue
		}
		if b := best[it.dot.Replica]; b == nil || b.dot.Counter < it.dot.Counter {
			best[it.dot.Replica] = it
		}
	}
	out := make(map[ReplicaID]*counterRow, len(best))
	for r, it := range best {
		out[r] = it.ctr
	}
	return out
}

// rights returns the bounded-counter rights replica r holds.
func boundedRights(rows map[ReplicaID]*counterRow, r ReplicaID) uint64 {
	var in, out uint64
	if own := rows[r]; own != nil {
		in = own.P
		out = own.N + own.outSum()
	}
	for o, row := range rows {
		if o != r {
			in += row.outTo(r)
		}
	}
	if out > in {
		return 0
	}
	return in - out
}

func (e *entry) size() int {
	n := 16
	for i := range e.items {
		n += itemSize(&e.items[i])
	}
	return n
}

func itemSize(it *item) int {
	n := 30 + len(it.val)
	if it.ctr != nil {
		n += 20 + 20*len(it.ctr.Out)
	}
	return n
}
