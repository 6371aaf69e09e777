package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

// The simulation drives 5 replicas through 10,000 random mutations with
// random delivery (reordering, 10% loss, 5% duplication, periodic
// anti-entropy through the wire encoding) and checks every read against a
// reference model.
//
// The reference model is a deliberately naive restatement of the semantics:
// every operation is kept forever with the set of operations it supersedes
// ("covered": what the issuing replica observed of that register, element,
// own counter row or whole entry), each replica is just the set of
// operations it has received, and an operation's effect is visible at a
// replica iff the replica received it and received nothing that supersedes
// it. Add-wins, update-wins-over-remove and LWW/MV semantics all follow from
// that definition; the implementation must agree with it on every read.

type simOp struct {
	id      Dot
	ts      Timestamp
	ck      string // coll + "\x00" + key
	kind    Kind   // 0 for removals
	val     string
	row     counterRow
	covered []Dot
}

type simModel struct {
	ops       map[Dot]*simOp
	byKey     map[string][]*simOp
	coveredBy map[Dot][]Dot
	recv      []map[Dot]bool
}

func (m *simModel) visible(r int, ck string) []*simOp {
	var out []*simOp
	for _, o := range m.byKey[ck] {
		if o.kind == 0 || !m.recv[r][o.id] {
			continue
		}
		hidden := false
		for _, c := range m.coveredBy[o.id] {
			if m.recv[r][c] {
				hidden = true
				break
			}
		}
		if !hidden {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ts.Less(out[j].ts) })
	return out
}

func (m *simModel) add(r int, o *simOp) {
	m.ops[o.id] = o
	m.byKey[o.ck] = append(m.byKey[o.ck], o)
	for _, c := range o.covered {
		m.coveredBy[c] = append(m.coveredBy[c], o.id)
	}
	m.recv[r][o.id] = true
}

// rows returns, per replica, the visible counter row of kind k.
func (m *simModel) rows(r int, ck string, k Kind) map[ReplicaID]*simOp {
	out := map[ReplicaID]*simOp{}
	for _, o := range m.visible(r, ck) {
		if o.kind == k {
			if p := out[o.id.Replica]; p == nil || p.id.Counter < o.id.Counter {
				out[o.id.Replica] = o
			}
		}
	}
	return out
}

func simRights(rows map[ReplicaID]*simOp, r ReplicaID) uint64 {
	var in, out uint64
	if own := rows[r]; own != nil {
		in = own.row.P
		out = own.row.N + own.row.outSum()
	}
	for o, row := range rows {
		if o != r {
			in += row.row.outTo(r)
		}
	}
	if out > in {
		return 0
	}
	return in - out
}

// read renders what replica r's reference state says about key ck of kind k.
func (m *simModel) read(r int, ck string, k Kind, id ReplicaID) string {
	vis := m.visible(r, ck)
	if len(vis) == 0 {
		return "absent"
	}
	switch k {
	case KindLWW:
		return "lww " + vis[len(vis)-1].val
	case KindMV:
		var vs []string
		for _, o := range vis {
			vs = append(vs, o.val)
		}
		return fmt.Sprint("mv ", vs)
	case KindSet:
		set := map[string]bool{}
		for _, o := range vis {
			set[o.val] = true
		}
		var es []string
		for e := range set {
			es = append(es, e)
		}
		sort.Strings(es)
		return fmt.Sprint("set ", es)
	default:
		var p, n uint64
		rows := m.rows(r, ck, k)
		for _, o := range rows {
			p += o.row.P
			n += o.row.N
		}
		if k == KindBounded {
			return fmt.Sprintf("counter %d rights %d", int64(p-n), simRights(rows, id))
		}
		return fmt.Sprintf("counter %d", int64(p-n))
	}
}

// implRead renders the same from the implementation.
func implRead(d *Document, coll, key string, k Kind) string {
	if !d.Has(coll, key) {
		return "absent"
	}
	switch k {
	case KindLWW:
		v, _, _ := d.GetLWW(coll, key)
		return "lww " + string(v)
	case KindMV:
		var vs []string
		for _, v := range d.GetMV(coll, key) {
			vs = append(vs, string(v))
		}
		return fmt.Sprint("mv ", vs)
	case KindSet:
		return fmt.Sprint("set ", d.SetMembers(coll, key))
	case KindGCounter:
		return fmt.Sprintf("counter %d", int64(d.GCounter(coll, key)))
	case KindPNCounter:
		return fmt.Sprintf("counter %d", d.PNCounter(coll, key))
	default:
		return fmt.Sprintf("counter %d rights %d", d.Bounded(coll, key), d.BoundedRights(coll, key, d.ID()))
	}
}

type simMsg struct {
	to    int
	from  int
	delta *Delta
}

func TestSimulationAgainstReferenceModel(t *testing.T) {
	const replicas, keys = 5, 30
	ops := 10_000
	if raceEnabled || testing.Short() {
		ops = 2_000
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runSimulation(t, seed, replicas, keys, ops) })
		if raceEnabled || testing.Short() {
			break
		}
	}
}

func runSimulation(t *testing.T, seed uint64, replicas, keys, nops int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	ft := newFakeTime()
	docs := make([]*Document, replicas)
	m := &simModel{ops: map[Dot]*simOp{}, byKey: map[string][]*simOp{}, coveredBy: map[Dot][]Dot{}}
	for i := range docs {
		id := ReplicaID(i + 1)
		d, err := NewDocumentWithConfig(id, NewClock(id, ft.now, 0), Config{LogMaxDeltas: 300})
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = d
		m.recv = append(m.recv, map[Dot]bool{})
	}
	keyKind := func(i int) Kind { return kindsUnderTest[i%len(kindsUnderTest)] }
	keyName := func(i int) (string, string) { return fmt.Sprint("coll", i%3), fmt.Sprint("key", i) }
	check := func(r, ki int, when string) {
		coll, key := keyName(ki)
		k := keyKind(ki)
		got := implRead(docs[r], coll, key, k)
		want := m.read(r, coll+"\x00"+key, k, docs[r].ID())
		if got != want {
			t.Fatalf("%s: replica %d %s/%s (%v): got %q; model says %q", when, r+1, coll, key, k, got, want)
		}
		if k == KindBounded && docs[r].Bounded(coll, key) < 0 {
			t.Fatalf("%s: bounded counter %s/%s below zero: %d", when, coll, key, docs[r].Bounded(coll, key))
		}
	}
	checkAll := func(when string) {
		for r := range docs {
			for ki := 0; ki < keys; ki++ {
				check(r, ki, when)
			}
		}
	}
	deliver := func(msg simMsg) {
		changes, err := docs[msg.to].Join(msg.delta)
		if err != nil {
			t.Fatal(err)
		}
		if msg.delta.IsFull() {
			for dt := range m.recv[msg.from] {
				m.recv[msg.to][dt] = true
			}
		} else {
			for _, dt := range msg.delta.Dots() {
				m.recv[msg.to][dt] = true
			}
		}
		for _, c := range changes {
			if c.Removed == docs[msg.to].Has(c.Collection, c.Key) {
				t.Fatalf("change %v disagrees with Has", c)
			}
		}
	}
	antiEntropy := func(from, to int) {
		dl := docs[from].DeltaFor(docs[to].Version())
		if dl == nil {
			return
		}
		b, err := EncodeDelta(dl)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeDelta(b, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		deliver(simMsg{to: to, from: from, delta: dec})
	}

	var queue []simMsg
	fullStates, batches := 0, 0
	for done := 0; done < nops; {
		ft.t = ft.t.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
		switch p := rng.IntN(100); {
		case p < 45 && len(queue) > 0:
			i := rng.IntN(len(queue))
			msg := queue[i]
			queue[i] = queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			deliver(msg)
			check(msg.to, rng.IntN(keys), "after delivery")
			continue
		case p < 47:
			from, to := rng.IntN(replicas), rng.IntN(replicas)
			if from != to {
				dl := docs[from].DeltaFor(docs[to].Version())
				if dl != nil && dl.IsFull() {
					fullStates++
				} else if dl != nil {
					batches++
				}
				antiEntropy(from, to)
			}
			continue
		}
		r := rng.IntN(replicas)
		d := docs[r]
		ki := rng.IntN(keys)
		coll, key := keyName(ki)
		ck := coll + "\x00" + key
		k := keyKind(ki)
		vis := m.visible(r, ck)
		o := &simOp{ck: ck, kind: k}
		var dl *Delta
		var err error
		coverIf := func(f func(*simOp) bool) {
			for _, v := range vis {
				if f(v) {
					o.covered = append(o.covered, v.id)
				}
			}
		}
		ownRow := func() counterRow {
			var best *simOp
			for _, v := range vis {
				if v.kind == k && v.id.Replica == d.ID() && (best == nil || best.id.Counter < v.id.Counter) {
					best = v
				}
			}
			if best == nil {
				return counterRow{}
			}
			return *best.row.clone()
		}
		if k != KindBounded && rng.IntN(12) == 0 {
			o.kind = 0
			coverIf(func(*simOp) bool { return true })
			dl, err = d.Remove(coll, key)
		} else {
			switch k {
			case KindLWW, KindMV:
				o.val = fmt.Sprint("v", rng.IntN(1000))
				coverIf(func(v *simOp) bool { return v.kind == k })
				if k == KindLWW {
					dl, err = d.PutLWW(coll, key, []byte(o.val))
				} else {
					dl, err = d.PutMV(coll, key, []byte(o.val))
				}
			case KindSet:
				o.val = fmt.Sprint("e", rng.IntN(4))
				coverIf(func(v *simOp) bool { return v.kind == k && v.val == o.val })
				if rng.IntN(3) == 0 {
					o.kind = 0
					dl, err = d.RemoveFromSet(coll, key, o.val)
				} else {
					dl, err = d.AddToSet(coll, key, o.val)
				}
			case KindGCounter, KindPNCounter:
				coverIf(func(v *simOp) bool { return v.kind == k && v.id.Replica == d.ID() })
				o.row = ownRow()
				n := int64(rng.IntN(11) - 5)
				if k == KindGCounter {
					n = max(n, 0)
					o.row.P += uint64(n)
					dl, err = d.IncGCounter(coll, key, uint64(n))
				} else {
					if n >= 0 {
						o.row.P += uint64(n)
					} else {
						o.row.N += uint64(-n)
					}
					dl, err = d.AddPNCounter(coll, key, n)
				}
			case KindBounded:
				coverIf(func(v *simOp) bool { return v.kind == k && v.id.Replica == d.ID() })
				o.row = ownRow()
				n := uint64(rng.IntN(4))
				rights := simRights(m.rows(r, ck, k), d.ID())
				a := rng.IntN(3)
				if a == 0 && r != ki%replicas {
					a = 1
				}
				switch {
				case a == 0: // one "owner" replica per key issues rights
					o.row.P += n
					dl, err = d.IncBounded(coll, key, n)
				case a == 1:
					o.row.N += n
					dl, err = d.DecBounded(coll, key, n)
				default:
					to := ReplicaID(rng.IntN(replicas) + 1)
					if to == d.ID() {
						to = ReplicaID(r+1)%ReplicaID(replicas) + 1
					}
					found := false
					for i := range o.row.Out {
						if o.row.Out[i].To == to {
							o.row.Out[i].N += n
							found = true
						}
					}
					if !found {
						o.row.Out = append(o.row.Out, transfer{To: to, N: n})
					}
					dl, err = d.TransferBounded(coll, key, to, n)
				}
				if a != 0 && rights < n { // a decrement or transfer past the rights
					if !errors.Is(err, ErrInsufficientRights) {
						t.Fatalf("op past rights (%d < %d): err = %v", rights, n, err)
					}
					check(r, ki, "after refused op")
					continue
				}
			}
		}
		if err != nil {
			t.Fatalf("mutation %v on %s/%s: %v", k, coll, key, err)
		}
		implOp := &dl.ops[0]
		o.id, o.ts = implOp.it.dot, implOp.it.ts()
		if !sameDots(o.covered, implOp.covered) {
			t.Fatalf("op %v on %s/%s covers %v; model says %v", k, coll, key, implOp.covered, o.covered)
		}
		m.add(r, o)
		done++
		check(r, ki, "after local op")
		for j := range docs {
			if j == r || rng.IntN(10) == 0 {
				continue // lost
			}
			queue = append(queue, simMsg{to: j, from: r, delta: dl})
			if rng.IntN(20) == 0 {
				queue = append(queue, simMsg{to: j, from: r, delta: dl})
			}
		}
		if done%1000 == 0 {
			checkAll(fmt.Sprint("after ", done, " ops"))
		}
	}
	checkAll("before drain")
	rng.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
	for _, msg := range queue {
		deliver(msg)
	}
	for pass := 0; pass < 2; pass++ {
		for i := range docs {
			for j := range docs {
				if i != j {
					antiEntropy(i, j)
				}
			}
		}
	}
	checkAll("after convergence")
	ref := stateBytes(t, docs[0])
	for _, d := range docs[1:] {
		if !bytes.Equal(ref, stateBytes(t, d)) {
			t.Fatalf("replica %v differs from replica 1 after convergence", d.ID())
		}
		if !reflect.DeepEqual(d.Version(), docs[0].Version()) {
			t.Fatalf("versions differ: %v vs %v", d.Version(), docs[0].Version())
		}
	}
	for r := range docs {
		if len(m.recv[r]) != len(m.ops) {
			t.Fatalf("model: replica %d received %d of %d ops", r+1, len(m.recv[r]), len(m.ops))
		}
		if docs[r].ctx.CloudLen() != 0 {
			t.Fatalf("replica %d: dot cloud not compacted: %d", r+1, docs[r].ctx.CloudLen())
		}
	}
	t.Logf("%d ops, %d entries, anti-entropy: %d batches, %d full states", len(m.ops), docs[0].Len("coll0")+docs[0].Len("coll1")+docs[0].Len("coll2"), batches, fullStates)
}

func sameDots(a, b []Dot) bool {
	if len(a) != len(b) {
		return false
	}
	a = append([]Dot(nil), a...)
	b = append([]Dot(nil), b...)
	sort.Slice(a, func(i, j int) bool { return a[i].less(a[j]) })
	sort.Slice(b, func(i, j int) bool { return b[i].less(b[j]) })
	return reflect.DeepEqual(a, b)
}
