package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestLWWPutGetAndReplicate(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	d1 := must(t)(a.PutLWW("nodes", "n1", []byte("v1")))
	if v, _, ok := a.GetLWW("nodes", "n1"); !ok || string(v) != "v1" {
		t.Fatalf("GetLWW after put = %q, %v; want v1", v, ok)
	}
	ch := join(t, b, d1)
	if want := []Change{{"nodes", "n1", false}}; !reflect.DeepEqual(ch, want) {
		t.Fatalf("Join changes = %v; want %v", ch, want)
	}
	if ch := join(t, b, d1); len(ch) != 0 {
		t.Fatalf("second Join changes = %v; want none (idempotent)", ch)
	}
	ft.t = ft.t.Add(time.Millisecond)
	d2 := must(t)(b.PutLWW("nodes", "n1", []byte("v2")))
	join(t, a, d2)
	for _, d := range []*Document{a, b} {
		if v, ts, ok := d.GetLWW("nodes", "n1"); !ok || string(v) != "v2" || ts.Replica != 2 {
			t.Fatalf("replica %v: GetLWW = %q %v %v; want v2 from 2", d.ID(), v, ts, ok)
		}
	}
	if got := a.Keys("nodes"); !reflect.DeepEqual(got, []string{"n1"}) {
		t.Fatalf("Keys = %v", got)
	}
	if a.Len("nodes") != 1 || a.Len("other") != 0 {
		t.Fatalf("Len = %d, %d", a.Len("nodes"), a.Len("other"))
	}
}

func TestLWWConcurrentWritesHighestTimestampWins(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	// Same wall time, same logical: the replica ID breaks the tie.
	da := must(t)(a.PutLWW("c", "k", []byte("a")))
	db := must(t)(b.PutLWW("c", "k", []byte("b")))
	join(t, a, db)
	join(t, b, da)
	for _, d := range []*Document{a, b} {
		if v, _, _ := d.GetLWW("c", "k"); string(v) != "b" {
			t.Fatalf("replica %v: GetLWW = %q; want b (higher replica ID wins the tie)", d.ID(), v)
		}
	}
	// A later write by a supersedes both siblings.
	da2 := must(t)(a.PutLWW("c", "k", []byte("a2")))
	join(t, b, da2)
	if v, _, _ := b.GetLWW("c", "k"); string(v) != "a2" {
		t.Fatalf("GetLWW = %q; want a2", v)
	}
	if n := len(b.entry("c", "k").items); n != 1 {
		t.Fatalf("siblings after superseding write = %d; want 1", n)
	}
}

func TestMVRegisterSiblings(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	da := must(t)(a.PutMV("c", "k", []byte("x")))
	ft.t = ft.t.Add(time.Second)
	db := must(t)(b.PutMV("c", "k", []byte("y")))
	join(t, a, db)
	join(t, b, da)
	want := [][]byte{[]byte("x"), []byte("y")}
	for _, d := range []*Document{a, b} {
		if got := d.GetMV("c", "k"); !reflect.DeepEqual(got, want) {
			t.Fatalf("replica %v: GetMV = %q; want %q", d.ID(), got, want)
		}
	}
	dc := must(t)(a.PutMV("c", "k", []byte("z")))
	join(t, b, dc)
	if got := b.GetMV("c", "k"); !reflect.DeepEqual(got, [][]byte{[]byte("z")}) {
		t.Fatalf("GetMV after superseding write = %q; want [z]", got)
	}
}

func TestORSetAddWins(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	join(t, b, must(t)(a.AddToSet("s", "k", "x")))
	rm := must(t)(a.RemoveFromSet("s", "k", "x"))
	add := must(t)(b.AddToSet("s", "k", "x")) // concurrent re-add
	join(t, a, add)
	join(t, b, rm)
	for _, d := range []*Document{a, b} {
		if !d.SetContains("s", "k", "x") {
			t.Fatalf("replica %v: x missing; add must win over a concurrent remove", d.ID())
		}
	}
	rm2 := must(t)(b.RemoveFromSet("s", "k", "x"))
	join(t, a, rm2)
	for _, d := range []*Document{a, b} {
		if d.SetContains("s", "k", "x") || d.Has("s", "k") {
			t.Fatalf("replica %v: x still present after observed remove", d.ID())
		}
	}
	join(t, a, must(t)(a.AddToSet("s", "k", "b")))
	join(t, a, must(t)(a.AddToSet("s", "k", "a")))
	if got := a.SetMembers("s", "k"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("SetMembers = %v; want [a b]", got)
	}
}

func TestCounters(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	var ds []*Delta
	ds = append(ds, must(t)(a.IncGCounter("m", "g", 3)), must(t)(b.IncGCounter("m", "g", 4)), must(t)(a.IncGCounter("m", "g", 1)))
	ds = append(ds, must(t)(a.AddPNCounter("m", "pn", 10)), must(t)(b.AddPNCounter("m", "pn", -15)))
	for _, d := range ds {
		join(t, a, d)
		join(t, b, d)
	}
	for _, d := range []*Document{a, b} {
		if g := d.GCounter("m", "g"); g != 8 {
			t.Fatalf("replica %v: GCounter = %d; want 8", d.ID(), g)
		}
		if p := d.PNCounter("m", "pn"); p != -5 {
			t.Fatalf("replica %v: PNCounter = %d; want -5", d.ID(), p)
		}
	}
	if n := len(a.entry("m", "g").items); n != 2 {
		t.Fatalf("gcounter items = %d; want one per replica (2)", n)
	}
}

func TestBoundedCounterRightsAndTransfer(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	join(t, b, must(t)(a.IncBounded("q", "cpu", 10)))
	_, err := b.DecBounded("q", "cpu", 1)
	var be *BoundError
	if !errors.As(err, &be) || !errors.Is(err, ErrInsufficientRights) || be.Available != 0 || be.Requested != 1 {
		t.Fatalf("DecBounded without rights = %v; want *BoundError{Requested 1, Available 0}", err)
	}
	if _, err := a.TransferBounded("q", "cpu", 2, 11); !errors.Is(err, ErrInsufficientRights) {
		t.Fatalf("TransferBounded beyond rights = %v; want ErrInsufficientRights", err)
	}
	join(t, b, must(t)(a.TransferBounded("q", "cpu", 2, 4)))
	if r := b.BoundedRights("q", "cpu", 2); r != 4 {
		t.Fatalf("rights of 2 after transfer = %d; want 4", r)
	}
	// Both sides decrement concurrently, each within its own rights.
	da := must(t)(a.DecBounded("q", "cpu", 6))
	db := must(t)(b.DecBounded("q", "cpu", 4))
	if _, err := a.DecBounded("q", "cpu", 1); !errors.Is(err, ErrInsufficientRights) {
		t.Fatalf("a exceeding rights = %v; want ErrInsufficientRights", err)
	}
	join(t, a, db)
	join(t, b, da)
	for _, d := range []*Document{a, b} {
		if v := d.Bounded("q", "cpu"); v != 0 {
			t.Fatalf("replica %v: Bounded = %d; want 0", d.ID(), v)
		}
	}
}

// TestRemoveConcurrentWithNestedUpdate documents the OR-map semantics: a
// remove cancels exactly the updates it observed; a concurrent update
// survives (update-wins, like Riak maps and Akka's ORMap).
func TestRemoveConcurrentWithNestedUpdate(t *testing.T) {
	type kase struct {
		name   string
		setup  func(d *Document) (*Delta, error)
		update func(d *Document) (*Delta, error)
		check  func(d *Document) error
	}
	cases := []kase{
		{"lww", func(d *Document) (*Delta, error) { return d.PutLWW("c", "k", []byte("old")) },
			func(d *Document) (*Delta, error) { return d.PutLWW("c", "k", []byte("new")) },
			func(d *Document) error {
				if v, _, ok := d.GetLWW("c", "k"); !ok || string(v) != "new" {
					return fmt.Errorf("GetLWW = %q, %v; want new", v, ok)
				}
				return nil
			}},
		{"set", func(d *Document) (*Delta, error) { return d.AddToSet("c", "k", "old") },
			func(d *Document) (*Delta, error) { return d.AddToSet("c", "k", "new") },
			func(d *Document) error {
				// only the concurrent add survives; the observed element is gone.
				if got := d.SetMembers("c", "k"); !reflect.DeepEqual(got, []string{"new"}) {
					return fmt.Errorf("SetMembers = %v; want [new]", got)
				}
				return nil
			}},
		{"pncounter", func(d *Document) (*Delta, error) { return d.AddPNCounter("c", "k", 5) },
			func(d *Document) (*Delta, error) { return d.AddPNCounter("c", "k", 1) },
			func(d *Document) error {
				// The updater's row is cumulative: its whole contribution survives.
				if v := d.PNCounter("c", "k"); v != 6 {
					return fmt.Errorf("PNCounter = %d; want 6", v)
				}
				return nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ft := newFakeTime()
			a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
			join(t, a, must(t)(c.setup(b)))
			rm := must(t)(a.Remove("c", "k"))
			if a.Has("c", "k") {
				t.Fatal("entry present after local Remove")
			}
			ft.t = ft.t.Add(time.Millisecond)
			up := must(t)(c.update(b))
			chA := join(t, a, up)
			chB := join(t, b, rm)
			for _, d := range []*Document{a, b} {
				if err := c.check(d); err != nil {
					t.Fatalf("replica %v: %v", d.ID(), err)
				}
			}
			// a sees the entry come back; b may see the observed part go.
			if len(chA) != 1 || chA[0].Removed || len(chB) > 1 || (len(chB) == 1 && chB[0].Removed) {
				t.Fatalf("changes a=%v b=%v; want no removal", chA, chB)
			}
			if !sameState(t, a, b) {
				t.Fatal("replicas diverged")
			}
		})
	}
	// A remove that observed the update removes it everywhere.
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	join(t, a, must(t)(b.PutLWW("c", "k", []byte("v"))))
	ch := join(t, b, must(t)(a.Remove("c", "k")))
	if want := []Change{{"c", "k", true}}; !reflect.DeepEqual(ch, want) {
		t.Fatalf("changes = %v; want %v", ch, want)
	}
	if b.Has("c", "k") || b.Len("c") != 0 {
		t.Fatal("entry survives an observed remove")
	}
}

func TestJoinRejectsFarFutureDeltaUnchanged(t *testing.T) {
	ftA, ftB := newFakeTime(), newFakeTime()
	a, b := newDoc(t, 1, ftA), newDoc(t, 2, ftB)
	ftA.t = ftA.t.Add(2 * time.Second)
	d := must(t)(a.PutLWW("c", "k", []byte("v")))
	before := stateBytes(t, b)
	_, err := b.Join(d)
	var oe *ClockOffsetError
	if !errors.As(err, &oe) {
		t.Fatalf("Join of far-future delta = %v; want *ClockOffsetError", err)
	}
	if !bytes.Equal(before, stateBytes(t, b)) || b.Version()[1] != 0 {
		t.Fatal("rejected delta changed the state")
	}
	// Same through a full state.
	if _, err := b.Join(a.State()); !errors.As(err, &oe) {
		t.Fatalf("Join of far-future state = %v; want *ClockOffsetError", err)
	}
	ftB.t = ftB.t.Add(2 * time.Second)
	join(t, b, d)
	if v, _, _ := b.GetLWW("c", "k"); string(v) != "v" {
		t.Fatal("delta not applied once the clocks agree")
	}
}

func TestGapDoesNotAdvanceVersion(t *testing.T) {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	var ds []*Delta
	for i := 0; i < 5; i++ {
		ds = append(ds, must(t)(a.PutLWW("c", fmt.Sprint(i), []byte("v"))))
	}
	for _, i := range []int{0, 1, 2, 4} {
		join(t, b, ds[i])
	}
	if v := b.Version()[1]; v != 3 {
		t.Fatalf("version after gap = %d; want 3", v)
	}
	if b.Len("c") != 4 {
		t.Fatalf("Len = %d; want 4", b.Len("c"))
	}
	// Anti-entropy fills the gap.
	dl := a.DeltaFor(b.Version())
	if dl == nil || dl.IsFull() {
		t.Fatalf("DeltaFor = %v; want an op batch", dl)
	}
	if got := dl.Dots(); !reflect.DeepEqual(got, []Dot{{1, 4}, {1, 5}}) {
		t.Fatalf("DeltaFor dots = %v; want 1:4 1:5", got)
	}
	join(t, b, dl)
	if v := b.Version()[1]; v != 5 {
		t.Fatalf("version after fill = %d; want 5", v)
	}
	if b.DeltaFor(a.Version()) != nil || a.DeltaFor(b.Version()) != nil {
		t.Fatal("DeltaFor between equal replicas is not nil")
	}
}

func TestDeltaForTransitiveAndFallback(t *testing.T) {
	ft := newFakeTime()
	a := newDoc(t, 1, ft)
	b, err := NewDocumentWithConfig(2, NewClock(2, ft.now, 0), Config{LogMaxDeltas: 4})
	if err != nil {
		t.Fatal(err)
	}
	c := newDoc(t, 3, ft)
	for i := 0; i < 3; i++ {
		join(t, b, must(t)(a.PutLWW("c", fmt.Sprint(i), []byte("v"))))
	}
	// c learns a's writes from b (transitive forwarding through b's log).
	dl := b.DeltaFor(c.Version())
	if dl == nil || dl.IsFull() || dl.Len() != 3 {
		t.Fatalf("DeltaFor = %+v; want batch of 3", dl)
	}
	join(t, c, dl)
	if c.Version()[1] != 3 || c.Len("c") != 3 {
		t.Fatalf("c version %v len %d", c.Version(), c.Len("c"))
	}
	// b's log holds only 4 deltas: a peer needing older ones gets the full state.
	for i := 0; i < 6; i++ {
		join(t, b, must(t)(a.PutLWW("c", fmt.Sprint(i), []byte("w"))))
	}
	if b.LogLen() != 4 {
		t.Fatalf("LogLen = %d; want 4", b.LogLen())
	}
	dl = b.DeltaFor(c.Version())
	if dl == nil || !dl.IsFull() {
		t.Fatalf("DeltaFor past the log = %+v; want full state", dl)
	}
	join(t, c, dl)
	if !sameState(t, b, c) || !reflect.DeepEqual(c.Version(), b.Version()) {
		t.Fatal("full-state fallback did not converge")
	}
}

func TestRestartContinuesSeq(t *testing.T) {
	ft := newFakeTime()
	a := newDoc(t, 1, ft)
	for i := 0; i < 5; i++ {
		must(t)(a.PutLWW("c", fmt.Sprint(i), []byte("v")))
	}
	must(t)(a.Remove("c", "0"))
	must(t)(a.IncBounded("q", "x", 5))
	b, err := EncodeDelta(a.State())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeDelta(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	a2 := newDoc(t, 1, ft)
	join(t, a2, dec)
	if !bytes.Equal(stateBytes(t, a), stateBytes(t, a2)) {
		t.Fatal("state did not round-trip exactly")
	}
	if a2.Seq() != a.Seq() {
		t.Fatalf("restored seq = %d; want %d", a2.Seq(), a.Seq())
	}
	d := must(t)(a2.PutLWW("c", "new", nil))
	if got := d.Dots(); got[0] != (Dot{1, a.Seq() + 1}) {
		t.Fatalf("next dot after restart = %v; want 1:%d", got[0], a.Seq()+1)
	}
}

func TestInvalidArguments(t *testing.T) {
	ft := newFakeTime()
	a := newDoc(t, 1, ft)
	if _, err := a.PutLWW("", "k", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("PutLWW empty collection = %v", err)
	}
	if _, err := a.TransferBounded("c", "k", 1, 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("transfer to self = %v", err)
	}
	if _, err := NewDocumentWithConfig(1, NewClock(1, ft.now, 0), Config{LogMaxDeltas: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative config = %v", err)
	}
	must(t)(a.IncGCounter("c", "g", ^uint64(0)))
	if _, err := a.IncGCounter("c", "g", 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflow = %v", err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	ft := newFakeTime()
	a := newDoc(t, 1, ft)
	ds := []*Delta{
		must(t)(a.PutLWW("c", "k", []byte("v"))),
		must(t)(a.PutMV("c", "m", []byte("m"))),
		must(t)(a.AddToSet("c", "s", "e")),
		must(t)(a.IncGCounter("c", "g", 2)),
		must(t)(a.AddPNCounter("c", "p", -2)),
		must(t)(a.IncBounded("c", "b", 2)),
		must(t)(a.TransferBounded("c", "b", 9, 1)),
		must(t)(a.Remove("c", "k")),
		a.State(),
	}
	for i, d := range ds {
		b1, err := EncodeDelta(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := DecodeDelta(b1, DefaultLimits)
		if err != nil {
			t.Fatalf("delta %d: decode: %v", i, err)
		}
		b2, err := EncodeDelta(d2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("delta %d: re-encoding differs", i)
		}
		if d2.Origin() != 1 || d2.IsFull() != d.IsFull() {
			t.Fatalf("delta %d: origin %v full %v", i, d2.Origin(), d2.IsFull())
		}
	}
	v := VersionVector{1: 5, 7: 2}
	b, err := EncodeVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := DecodeVersion(b, DefaultLimits)
	if err != nil || !reflect.DeepEqual(v, v2) {
		t.Fatalf("DecodeVersion = %v, %v; want %v", v2, err, v)
	}
}
