package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// kindsUnderTest lists every CRDT type a document entry can hold.
var kindsUnderTest = []Kind{KindLWW, KindMV, KindSet, KindGCounter, KindPNCounter, KindBounded}

const propReplicas = 3

// randomOp performs one random mutation of kind k at d and checks that the
// local read sees the write (read-your-writes). It returns nil when the
// mutation was refused (bounded counter without rights).
func randomOp(t *rapid.T, d *Document, k Kind) *Delta {
	key := rapid.SampledFrom([]string{"k0", "k1"}).Draw(t, "key")
	if rapid.IntRange(0, 9).Draw(t, "remove") == 0 {
		dl, err := d.Remove("c", key)
		if err != nil {
			t.Fatal(err)
		}
		if d.Has("c", key) {
			t.Fatalf("read-your-writes: %s present after Remove", key)
		}
		return dl
	}
	ok := func(dl *Delta, err error) *Delta {
		if err != nil {
			t.Fatal(err)
		}
		return dl
	}
	switch k {
	case KindLWW:
		v := []byte(rapid.StringN(0, 4, -1).Draw(t, "val"))
		dl := ok(d.PutLWW("c", key, v))
		if got, _, _ := d.GetLWW("c", key); !bytes.Equal(got, v) {
			t.Fatalf("read-your-writes: GetLWW = %q; want %q", got, v)
		}
		return dl
	case KindMV:
		v := []byte(rapid.StringN(0, 4, -1).Draw(t, "val"))
		dl := ok(d.PutMV("c", key, v))
		if got := d.GetMV("c", key); len(got) != 1 || !bytes.Equal(got[0], v) {
			t.Fatalf("read-your-writes: GetMV = %q; want [%q]", got, v)
		}
		return dl
	case KindSet:
		e := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "elem")
		if rapid.Bool().Draw(t, "add") {
			dl := ok(d.AddToSet("c", key, e))
			if !d.SetContains("c", key, e) {
				t.Fatalf("read-your-writes: %q missing after add", e)
			}
			return dl
		}
		dl := ok(d.RemoveFromSet("c", key, e))
		if d.SetContains("c", key, e) {
			t.Fatalf("read-your-writes: %q present after remove", e)
		}
		return dl
	case KindGCounter:
		n := rapid.Uint64Range(0, 5).Draw(t, "n")
		before := d.GCounter("c", key)
		dl := ok(d.IncGCounter("c", key, n))
		if got := d.GCounter("c", key); got != before+n {
			t.Fatalf("read-your-writes: GCounter = %d; want %d", got, before+n)
		}
		return dl
	case KindPNCounter:
		n := rapid.Int64Range(-5, 5).Draw(t, "n")
		before := d.PNCounter("c", key)
		dl := ok(d.AddPNCounter("c", key, n))
		if got := d.PNCounter("c", key); got != before+n {
			t.Fatalf("read-your-writes: PNCounter = %d; want %d", got, before+n)
		}
		return dl
	case KindBounded:
		n := rapid.Uint64Range(0, 5).Draw(t, "n")
		before := d.Bounded("c", key)
		rights := d.BoundedRights("c", key, d.ID())
		switch rapid.IntRange(0, 2).Draw(t, "bop") {
		case 0:
			dl := ok(d.IncBounded("c", key, n))
			if got := d.Bounded("c", key); got != before+int64(n) {
				t.Fatalf("read-your-writes: Bounded = %d; want %d", got, before+int64(n))
			}
			return dl
		case 1:
			dl, err := d.DecBounded("c", key, n)
			if n > rights {
				if !errors.Is(err, ErrInsufficientRights) || d.Bounded("c", key) != before {
					t.Fatalf("DecBounded(%d) with %d rights = %v", n, rights, err)
				}
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Bounded("c", key); got != before-int64(n) {
				t.Fatalf("read-your-writes: Bounded = %d; want %d", got, before-int64(n))
			}
			return dl
		default:
			to := ReplicaID(rapid.IntRange(1, propReplicas).Filter(func(i int) bool { return ReplicaID(i) != d.ID() }).Draw(t, "to"))
			dl, err := d.TransferBounded("c", key, to, n)
			if n > rights {
				if !errors.Is(err, ErrInsufficientRights) {
					t.Fatalf("TransferBounded(%d) with %d rights = %v", n, rights, err)
				}
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := d.BoundedRights("c", key, d.ID()); got != rights-n {
				t.Fatalf("rights after transfer = %d; want %d", got, rights-n)
			}
			return dl
		}
	}
	t.Fatalf("kind %v", k)
	return nil
}

// history runs a random interleaving of mutations and deliveries on
// propReplicas replicas and returns them with every delta produced.
func history(t *rapid.T, k Kind, ft *fakeTime) ([]*Document, []*Delta) {
	docs := make([]*Document, propReplicas)
	for i := range docs {
		docs[i] = NewDocument(ReplicaID(i+1), NewClock(ReplicaID(i+1), ft.now, 0))
	}
	var deltas []*Delta
	steps := rapid.IntRange(1, 30).Draw(t, "steps")
	for s := 0; s < steps; s++ {
		r := rapid.IntRange(0, propReplicas-1).Draw(t, "replica")
		if len(deltas) > 0 && rapid.Bool().Draw(t, "deliver") {
			i := rapid.IntRange(0, len(deltas)-1).Draw(t, "delta")
			if _, err := docs[r].Join(deltas[i]); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ft.t = ft.t.Add(time.Duration(rapid.IntRange(0, 2).Draw(t, "ms")) * time.Millisecond)
		if d := randomOp(t, docs[r], k); d != nil {
			deltas = append(deltas, d)
		}
	}
	return docs, deltas
}

func fresh(ft *fakeTime, id ReplicaID) *Document {
	return NewDocument(id, NewClock(id, ft.now, 0))
}

func rstate(t *rapid.T, d *Document) []byte {
	s := d.State()
	s.from = 1
	b, err := EncodeDelta(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rjoin(t *rapid.T, d *Document, dl *Delta) {
	if _, err := d.Join(dl); err != nil {
		t.Fatal(err)
	}
}

func forEachKind(t *testing.T, prop func(t *rapid.T, k Kind)) {
	for _, k := range kindsUnderTest {
		t.Run(k.String(), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) { prop(t, k) })
		})
	}
}

// TestPropJoinLaws: join is commutative, associative and idempotent on full
// states and on operation deltas.
func TestPropJoinLaws(t *testing.T) {
	forEachKind(t, func(t *rapid.T, k Kind) {
		ft := newFakeTime()
		docs, deltas := history(t, k, ft)
		a, b, c := docs[0].State(), docs[1].State(), docs[2].State()
		if len(deltas) > 0 {
			// Mix in a raw operation delta as one operand.
			c = deltas[rapid.IntRange(0, len(deltas)-1).Draw(t, "op")]
		}
		joined := func(ds ...*Delta) []byte {
			x := fresh(ft, 9)
			for _, d := range ds {
				rjoin(t, x, d)
			}
			return rstate(t, x)
		}
		if !bytes.Equal(joined(a, b), joined(b, a)) {
			t.Fatal("join not commutative (a,b)")
		}
		if !bytes.Equal(joined(a, c), joined(c, a)) {
			t.Fatal("join not commutative (a,op)")
		}
		bc := fresh(ft, 9)
		rjoin(t, bc, b)
		rjoin(t, bc, c)
		bcState := bc.State()
		if !bytes.Equal(joined(a, b, c), joined(a, bcState)) {
			t.Fatal("join not associative")
		}
		if !bytes.Equal(joined(a), joined(a, a)) || !bytes.Equal(joined(c), joined(c, c, c)) {
			t.Fatal("join not idempotent")
		}
		// Joining a replica's own state into itself changes nothing.
		before := rstate(t, docs[0])
		ch, err := docs[0].Join(docs[0].State())
		if err != nil || len(ch) != 0 || !bytes.Equal(before, rstate(t, docs[0])) {
			t.Fatalf("self-join changed state: %v %v", ch, err)
		}
	})
}

// TestPropAnyOrderWithDuplicates: replicas receiving the same deltas in any
// order, with duplicates, reach equal state.
func TestPropAnyOrderWithDuplicates(t *testing.T) {
	forEachKind(t, func(t *rapid.T, k Kind) {
		ft := newFakeTime()
		_, deltas := history(t, k, ft)
		var ref []byte
		for rep := 0; rep < 3; rep++ {
			order := rapid.Permutation(deltas).Draw(t, "order")
			dups := rapid.SliceOfN(rapid.IntRange(0, max(len(deltas)-1, 0)), 0, 5).Draw(t, "dups")
			x := fresh(ft, ReplicaID(10+rep))
			for i, d := range order {
				rjoin(t, x, d)
				for _, j := range dups {
					if j == i {
						rjoin(t, x, deltas[j])
					}
				}
			}
			for _, j := range dups {
				if j < len(deltas) {
					rjoin(t, x, deltas[j])
				}
			}
			s := rstate(t, x)
			if ref == nil {
				ref = s
			} else if !bytes.Equal(ref, s) {
				t.Fatalf("replica %d diverged", rep)
			}
		}
	})
}

// TestPropLossThenAntiEntropy: with random loss of deltas, one anti-entropy
// exchange (each side sends DeltaFor(other.Version())) makes two replicas
// equal, whatever the log bound.
func TestPropLossThenAntiEntropy(t *testing.T) {
	forEachKind(t, func(t *rapid.T, k Kind) {
		ft := newFakeTime()
		logMax := rapid.IntRange(1, 40).Draw(t, "logMax")
		docs := make([]*Document, propReplicas)
		for i := range docs {
			id := ReplicaID(i + 1)
			d, err := NewDocumentWithConfig(id, NewClock(id, ft.now, 0), Config{LogMaxDeltas: logMax})
			if err != nil {
				t.Fatal(err)
			}
			docs[i] = d
		}
		steps := rapid.IntRange(1, 30).Draw(t, "steps")
		for s := 0; s < steps; s++ {
			r := rapid.IntRange(0, propReplicas-1).Draw(t, "replica")
			ft.t = ft.t.Add(time.Millisecond)
			d := randomOp(t, docs[r], k)
			if d == nil {
				continue
			}
			for j := range docs {
				if j != r && rapid.Bool().Draw(t, "delivered") {
					// Deliver through the wire encoding.
					b, err := EncodeDelta(d)
					if err != nil {
						t.Fatal(err)
					}
					dd, err := DecodeDelta(b, DefaultLimits)
					if err != nil {
						t.Fatal(err)
					}
					rjoin(t, docs[j], dd)
				}
			}
		}
		a, b := docs[0], docs[1]
		toB, toA := a.DeltaFor(b.Version()), b.DeltaFor(a.Version())
		if toB != nil {
			rjoin(t, b, toB)
		}
		if toA != nil {
			rjoin(t, a, toA)
		}
		if !bytes.Equal(rstate(t, a), rstate(t, b)) {
			t.Fatal("replicas differ after one anti-entropy exchange")
		}
		if !reflect.DeepEqual(a.Version(), b.Version()) {
			t.Fatalf("versions differ: %v %v", a.Version(), b.Version())
		}
		// Deltas past a gap both sides share may be resent (a version vector
		// cannot express them); they must change nothing.
		if again := a.DeltaFor(b.Version()); again != nil {
			if ch, err := b.Join(again); err != nil || len(ch) != 0 {
				t.Fatalf("second exchange changed %v (%v)", ch, err)
			}
		}
	})
}

// TestPropRestart: the full state round-trips through the encoding into a
// fresh document with the same ID, which continues the sequence.
func TestPropRestart(t *testing.T) {
	forEachKind(t, func(t *rapid.T, k Kind) {
		ft := newFakeTime()
		docs, _ := history(t, k, ft)
		d := docs[0]
		b, err := EncodeDelta(d.State())
		if err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeDelta(b, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		r := fresh(ft, d.ID())
		rjoin(t, r, dec)
		if !bytes.Equal(rstate(t, d), rstate(t, r)) {
			t.Fatal("restored state differs")
		}
		if r.Seq() != d.Seq() {
			t.Fatalf("restored seq %d; want %d", r.Seq(), d.Seq())
		}
		for _, c := range d.Collections() {
			for _, key := range d.Keys(c) {
				if fmt.Sprint(d.Kinds(c, key)) != fmt.Sprint(r.Kinds(c, key)) {
					t.Fatal("kinds differ")
				}
			}
		}
	})
}
