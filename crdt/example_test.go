package crdt_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/rads-lang/constellation/crdt"
)

// Two replicas write concurrently, exchange deltas through the wire
// encoding and converge.
func Example() {
	now := func() time.Time { return time.Unix(1_700_000_000, 0) }
	a := crdt.NewDocument(1, crdt.NewClock(1, now, 0))
	b := crdt.NewDocument(2, crdt.NewClock(2, now, 0))

	da, _ := a.AddToSet("labels", "n1", "gpu")
	db, _ := b.PutLWW("nodes", "n2", []byte("alive"))

	send := func(to *crdt.Document, d *crdt.Delta) {
		wire, _ := crdt.EncodeDelta(d)
		dec, _ := crdt.DecodeDelta(wire, crdt.DefaultLimits)
		changes, _ := to.Join(dec)
		fmt.Println(to.ID(), "changed", changes)
	}
	send(b, da)
	send(a, db)

	v, _, _ := a.GetLWW("nodes", "n2")
	fmt.Println(string(v), b.SetMembers("labels", "n1"))
	fmt.Println("a missing from b:", b.DeltaFor(a.Version()) == nil)
	// Output:
	// 0000000000000002 changed [{labels n1 false}]
	// 0000000000000001 changed [{nodes n2 false}]
	// alive [gpu]
	// a missing from b: true
}

// A bounded counter never goes below zero: a replica can only spend the
// rights it holds.
func ExampleDocument_DecBounded() {
	now := func() time.Time { return time.Unix(1_700_000_000, 0) }
	a := crdt.NewDocument(1, crdt.NewClock(1, now, 0))
	b := crdt.NewDocument(2, crdt.NewClock(2, now, 0))

	d1, _ := a.IncBounded("quota", "cpu", 8)
	d2, _ := a.TransferBounded("quota", "cpu", b.ID(), 3)
	b.Join(d1)
	b.Join(d2)

	_, err := b.DecBounded("quota", "cpu", 4)
	var be *crdt.BoundError
	fmt.Println(errors.Is(err, crdt.ErrInsufficientRights), errors.As(err, &be) && be.Available == 3)
	b.DecBounded("quota", "cpu", 3)
	fmt.Println(b.Bounded("quota", "cpu"), b.BoundedRights("quota", "cpu", b.ID()))
	// Output:
	// true true
	// 5 0
}
