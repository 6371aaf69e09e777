package crdt

import (
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// FormatVersion is the version of the CBOR encoding written by EncodeDelta
// and EncodeVersion. Decoders reject other versions.
const FormatVersion = 1

// Limits bounds what a decoder accepts, so hostile input cannot exhaust
// memory or stack.
type Limits struct {
	MaxBytes   int // encoded size
	MaxDepth   int // CBOR nesting depth (at least 4; the format needs 11)
	MaxEntries int // total elements: operations, entries, items, dots, transfers
}

// DefaultLimits admits a full state of a few million entries: 64 MiB,
// depth 16, 4M entries (items, dots and transfers count).
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxDepth: 16, MaxEntries: 4 << 20}

// Wire format (all CBOR arrays; a dot is a flat pair replica, counter):
//
//	delta   = [version, from, ops / null, state / null]
//	op      = [replica, seq, wall, logical, coll, key, kind, val, row / null, covered]
//	state   = [ctx, applied, [coll...]]
//	ctx     = [[replica, n, ...] vv, [replica, counter, ...] cloud]   (sorted)
//	coll    = [name, [[key, [item...]]...]]                          (sorted)
//	item    = [replica, seq, wall, logical, kind, val, row / null]   (entry order)
//	row     = [p, n, [to, n, ...]]                                   (sorted by to)
//	version = [version, [replica, n, ...]]                           (sorted)
type wireDelta struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	From    uint64
	Ops     []wireOp
	State   *wireState
}

type wireOp struct {
	_       struct{} `cbor:",toarray"`
	Replica uint64
	Seq     uint64
	Wall    int64
	Logical uint32
	Coll    string
	Key     string
	Kind    uint8
	Val     []byte
	Row     *wireRow
	Covered []uint64
}

type wireState struct {
	_       struct{} `cbor:",toarray"`
	Ctx     wireCtx
	Applied wireCtx
	Colls   []wireColl
}

type wireCtx struct {
	_     struct{} `cbor:",toarray"`
	VV    []uint64
	Cloud []uint64
}

type wireColl struct {
	_       struct{} `cbor:",toarray"`
	Name    string
	Entries []wireEntry
}

type wireEntry struct {
	_     struct{} `cbor:",toarray"`
	Key   string
	Items []wireItem
}

type wireItem struct {
	_       struct{} `cbor:",toarray"`
	Replica uint64
	Seq     uint64
	Wall    int64
	Logical uint32
	Kind    uint8
	Val     []byte
	Row     *wireRow
}

type wireRow struct {
	_   struct{} `cbor:",toarray"`
	P   uint64
	N   uint64
	Out []uint64
}

type wireVersion struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	VV      []uint64
}

// encMode is immutable after construction (no package state is mutated).
var encMode = func() cbor.EncMode {
	m, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func decMode(lim Limits) (cbor.DecMode, error) {
	clamp := func(v, lo, hi int) int { return min(max(v, lo), hi) }
	return cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   clamp(lim.MaxDepth, 4, 65535),
		MaxArrayElements:  clamp(lim.MaxEntries, 16, 2147483647),
		MaxMapPairs:       clamp(lim.MaxEntries, 16, 2147483647),
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
}

func (l Limits) validate() error {
	if l.MaxBytes <= 0 || l.MaxDepth <= 0 || l.MaxEntries <= 0 {
		return fmt.Errorf("%w: limits must be positive", ErrInvalidArgument)
	}
	return nil
}

// EncodeDelta encodes a delta or full state in canonical CBOR. The same
// delta always encodes to the same bytes.
func EncodeDelta(d *Delta) ([]byte, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil delta", ErrInvalidArgument)
	}
	w := wireDelta{Version: FormatVersion, From: uint64(d.from)}
	if d.full == nil {
		w.Ops = make([]wireOp, len(d.ops))
		for i := range d.ops {
			o := &d.ops[i]
			w.Ops[i] = wireOp{
				Replica: uint64(o.it.dot.Replica), Seq: o.it.dot.Counter,
				Wall: o.it.wall, Logical: o.it.logical,
				Coll: o.coll, Key: o.key, Kind: uint8(o.it.kind), Val: o.it.val,
				Row: rowToWire(o.it.ctr), Covered: dotsToWire(o.covered),
			}
		}
	} else {
		w.State = stateToWire(d.full)
	}
	return encMode.Marshal(&w)
}

func dotsToWire(ds []Dot) []uint64 {
	out := make([]uint64, 0, 2*len(ds))
	for _, d := range ds {
		out = append(out, uint64(d.Replica), d.Counter)
	}
	return out
}

func rowToWire(r *counterRow) *wireRow {
	if r == nil {
		return nil
	}
	w := &wireRow{P: r.P, N: r.N, Out: make([]uint64, 0, 2*len(r.Out))}
	for _, t := range r.Out {
		w.Out = append(w.Out, uint64(t.To), t.N)
	}
	return w
}

func ctxToWire(c *CausalContext) wireCtx {
	w := wireCtx{VV: []uint64{}, Cloud: []uint64{}}
	for _, r := range c.replicasSorted() {
		w.VV = append(w.VV, uint64(r), c.vv[r])
	}
	for _, d := range c.cloudSorted() {
		w.Cloud = append(w.Cloud, uint64(d.Replica), d.Counter)
	}
	return w
}

func stateToWire(fs *fullState) *wireState {
	w := &wireState{Ctx: ctxToWire(fs.ctx), Applied: ctxToWire(fs.applied), Colls: []wireColl{}}
	names := make([]string, 0, len(fs.colls))
	for c := range fs.colls {
		names = append(names, c)
	}
	sortStrings(names)
	for _, c := range names {
		es := fs.colls[c]
		keys := make([]string, 0, len(es))
		for k := range es {
			keys = append(keys, k)
		}
		sortStrings(keys)
		wc := wireColl{Name: c, Entries: make([]wireEntry, 0, len(keys))}
		for _, k := range keys {
			e := es[k]
			we := wireEntry{Key: k, Items: make([]wireItem, len(e.items))}
			for i := range e.items {
				it := &e.items[i]
				we.Items[i] = wireItem{
					Replica: uint64(it.dot.Replica), Seq: it.dot.Counter,
					Wall: it.wall, Logical: it.logical, Kind: uint8(it.kind),
					Val: it.val, Row: rowToWire(it.ctr),
				}
			}
			wc.Entries = append(wc.Entries, we)
		}
		w.Colls = append(w.Colls, wc)
	}
	return w
}

// DecodeDelta decodes and validates an encoded delta or full state. Input
// that is not a well-formed delta of this format version, or that exceeds
// lim, returns an error wrapping ErrMalformed, ErrLimit or
// ErrUnsupportedVersion; it never panics.
func DecodeDelta(b []byte, lim Limits) (*Delta, error) {
	var w wireDelta
	if err := decodeWire(b, lim, &w); err != nil {
		return nil, err
	}
	if w.Version != FormatVersion {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedVersion, w.Version)
	}
	if (w.Ops == nil) == (w.State == nil) {
		return nil, fmt.Errorf("%w: delta needs exactly one of ops and state", ErrMalformed)
	}
	if w.From == 0 {
		return nil, fmt.Errorf("%w: origin 0", ErrMalformed)
	}
	budget := lim.MaxEntries
	d := &Delta{from: ReplicaID(w.From)}
	if w.State == nil {
		budget -= len(w.Ops)
		d.ops = make([]op, len(w.Ops))
		for i := range w.Ops {
			o, err := opFromWire(&w.Ops[i], &budget)
			if err != nil {
				return nil, err
			}
			d.ops[i] = o
		}
		if budget < 0 {
			return nil, fmt.Errorf("%w: more than %d entries", ErrLimit, lim.MaxEntries)
		}
		return d, nil
	}
	fs, err := stateFromWire(w.State, &budget)
	if err != nil {
		return nil, err
	}
	if budget < 0 {
		return nil, fmt.Errorf("%w: more than %d entries", ErrLimit, lim.MaxEntries)
	}
	d.full = fs
	return d, nil
}

func decodeWire(b []byte, lim Limits, v any) error {
	if err := lim.validate(); err != nil {
		return err
	}
	if len(b) > lim.MaxBytes {
		return fmt.Errorf("%w: %d bytes > %d", ErrLimit, len(b), lim.MaxBytes)
	}
	dm, err := decMode(lim)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if err := dm.Unmarshal(b, v); err != nil {
		var le *cbor.MaxNestedLevelError
		var ae *cbor.MaxArrayElementsError
		var me *cbor.MaxMapPairsError
		if asErr(err, &le) || asErr(err, &ae) || asErr(err, &me) {
			return fmt.Errorf("%w: %v", ErrLimit, err)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

func dotsFromWire(ws []uint64, budget *int) ([]Dot, error) {
	if len(ws)%2 != 0 {
		return nil, fmt.Errorf("%w: odd dot list", ErrMalformed)
	}
	*budget -= len(ws) / 2
	if *budget < 0 {
		return nil, fmt.Errorf("%w: too many dots", ErrLimit)
	}
	if len(ws) == 0 {
		return nil, nil
	}
	out := make([]Dot, len(ws)/2)
	for i := range out {
		out[i] = Dot{ReplicaID(ws[2*i]), ws[2*i+1]}
		if out[i].Replica == 0 || out[i].Counter == 0 {
			return nil, fmt.Errorf("%w: zero dot", ErrMalformed)
		}
	}
	return out, nil
}

func rowFromWire(w *wireRow, k Kind, budget *int) (*counterRow, error) {
	if w == nil {
		if k.isCounter() {
			return nil, fmt.Errorf("%w: %s without row", ErrMalformed, k)
		}
		return nil, nil
	}
	if !k.isCounter() {
		return nil, fmt.Errorf("%w: row on %s", ErrMalformed, k)
	}
	if len(w.Out)%2 != 0 {
		return nil, fmt.Errorf("%w: odd transfer list", ErrMalformed)
	}
	if len(w.Out) > 0 && k != KindBounded {
		return nil, fmt.Errorf("%w: transfers on %s", ErrMalformed, k)
	}
	*budget -= len(w.Out) / 2
	if *budget < 0 {
		return nil, fmt.Errorf("%w: too many transfers", ErrLimit)
	}
	r := &counterRow{P: w.P, N: w.N}
	if k == KindGCounter && r.N != 0 {
		return nil, fmt.Errorf("%w: decrement on gcounter", ErrMalformed)
	}
	for i := 0; i < len(w.Out); i += 2 {
		t := transfer{To: ReplicaID(w.Out[i]), N: w.Out[i+1]}
		if t.To == 0 || (len(r.Out) > 0 && r.Out[len(r.Out)-1].To >= t.To) {
			return nil, fmt.Errorf("%w: transfers not sorted", ErrMalformed)
		}
		r.Out = append(r.Out, t)
	}
	return r, nil
}

func itemFromWire(replica, seq uint64, wall int64, logical uint32, kind uint8, val []byte, row *wireRow, allowNone bool, budget *int) (item, error) {
	it := item{dot: Dot{ReplicaID(replica), seq}, wall: wall, logical: logical, kind: Kind(kind)}
	if it.dot.Replica == 0 || it.dot.Counter == 0 {
		return it, fmt.Errorf("%w: zero dot", ErrMalformed)
	}
	if it.kind > maxKind || (it.kind == 0 && !allowNone) {
		return it, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
	}
	switch it.kind {
	case KindLWW, KindMV, KindSet:
		it.val = val
		if it.val == nil {
			it.val = []byte{}
		}
	default:
		if len(val) > 0 {
			return it, fmt.Errorf("%w: value on %s", ErrMalformed, it.kind)
		}
	}
	var err error
	if it.kind != 0 {
		it.ctr, err = rowFromWire(row, it.kind, budget)
	} else if row != nil {
		err = fmt.Errorf("%w: row without kind", ErrMalformed)
	}
	return it, err
}

func opFromWire(w *wireOp, budget *int) (op, error) {
	it, err := itemFromWire(w.Replica, w.Seq, w.Wall, w.Logical, w.Kind, w.Val, w.Row, true, budget)
	if err != nil {
		return op{}, err
	}
	if w.Coll == "" || w.Key == "" {
		return op{}, fmt.Errorf("%w: empty collection or key", ErrMalformed)
	}
	covered, err := dotsFromWire(w.Covered, budget)
	if err != nil {
		return op{}, err
	}
	return op{coll: w.Coll, key: w.Key, it: it, covered: covered}, nil
}

func ctxFromWire(w *wireCtx, budget *int) (*CausalContext, error) {
	if len(w.VV)%2 != 0 || len(w.Cloud)%2 != 0 {
		return nil, fmt.Errorf("%w: odd context list", ErrMalformed)
	}
	*budget -= (len(w.VV) + len(w.Cloud)) / 2
	if *budget < 0 {
		return nil, fmt.Errorf("%w: context too large", ErrLimit)
	}
	c := &CausalContext{}
	var prev ReplicaID
	for i := 0; i < len(w.VV); i += 2 {
		r, n := ReplicaID(w.VV[i]), w.VV[i+1]
		if r == 0 || n == 0 || (i > 0 && r <= prev) {
			return nil, fmt.Errorf("%w: version vector not sorted", ErrMalformed)
		}
		prev = r
		if c.vv == nil {
			c.vv = make(VersionVector, len(w.VV)/2)
		}
		c.vv[r] = n
	}
	var last Dot
	for i := 0; i < len(w.Cloud); i += 2 {
		d := Dot{ReplicaID(w.Cloud[i]), w.Cloud[i+1]}
		if d.Replica == 0 || d.Counter == 0 || (i > 0 && !last.less(d)) {
			return nil, fmt.Errorf("%w: dot cloud not sorted", ErrMalformed)
		}
		last = d
		if d.Counter <= c.vv[d.Replica]+1 {
			return nil, fmt.Errorf("%w: dot cloud not compact", ErrMalformed)
		}
		if c.cloud == nil {
			c.cloud = make(map[Dot]struct{}, len(w.Cloud)/2)
		}
		c.cloud[d] = struct{}{}
	}
	return c, nil
}

func stateFromWire(w *wireState, budget *int) (*fullState, error) {
	ctx, err := ctxFromWire(&w.Ctx, budget)
	if err != nil {
		return nil, err
	}
	applied, err := ctxFromWire(&w.Applied, budget)
	if err != nil {
		return nil, err
	}
	fs := &fullState{colls: make(map[string]map[string]*entry, len(w.Colls)), ctx: ctx, applied: applied}
	*budget -= len(w.Colls)
	for ci := range w.Colls {
		wc := &w.Colls[ci]
		if wc.Name == "" || (ci > 0 && w.Colls[ci-1].Name >= wc.Name) || len(wc.Entries) == 0 {
			return nil, fmt.Errorf("%w: collections not sorted or empty", ErrMalformed)
		}
		*budget -= len(wc.Entries)
		if *budget < 0 {
			return nil, fmt.Errorf("%w: too many entries", ErrLimit)
		}
		es := make(map[string]*entry, len(wc.Entries))
		for ei := range wc.Entries {
			we := &wc.Entries[ei]
			if we.Key == "" || (ei > 0 && wc.Entries[ei-1].Key >= we.Key) || len(we.Items) == 0 {
				return nil, fmt.Errorf("%w: entries not sorted or empty", ErrMalformed)
			}
			*budget -= len(we.Items)
			if *budget < 0 {
				return nil, fmt.Errorf("%w: too many items", ErrLimit)
			}
			e := &entry{items: make([]item, len(we.Items))}
			for ii := range we.Items {
				wi := &we.Items[ii]
				it, err := itemFromWire(wi.Replica, wi.Seq, wi.Wall, wi.Logical, wi.Kind, wi.Val, wi.Row, false, budget)
				if err != nil {
					return nil, err
				}
				if ii > 0 && compareItems(&e.items[ii-1], &it) >= 0 {
					return nil, fmt.Errorf("%w: items not sorted", ErrMalformed)
				}
				if !ctx.Contains(it.dot) {
					return nil, fmt.Errorf("%w: item dot %s outside the causal context", ErrMalformed, it.dot)
				}
				e.items[ii] = it
			}
			es[we.Key] = e
		}
		fs.colls[wc.Name] = es
	}
	return fs, nil
}

// EncodeVersion encodes a version vector in canonical CBOR.
func EncodeVersion(v VersionVector) ([]byte, error) {
	c := CausalContext{vv: v}
	w := wireVersion{Version: FormatVersion, VV: ctxToWire(&c).VV}
	return encMode.Marshal(&w)
}

// DecodeVersion decodes a version vector, enforcing lim.
func DecodeVersion(b []byte, lim Limits) (VersionVector, error) {
	var w wireVersion
	if err := decodeWire(b, lim, &w); err != nil {
		return nil, err
	}
	if w.Version != FormatVersion {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedVersion, w.Version)
	}
	budget := lim.MaxEntries
	c, err := ctxFromWire(&wireCtx{VV: w.VV}, &budget)
	if err != nil {
		return nil, err
	}
	if c.vv == nil {
		return VersionVector{}, nil
	}
	return c.vv, nil
}

func sortStrings(s []string) { sort.Strings(s) }

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
