package crdt

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// fakeTime is an injected wall clock tests move by hand.
type fakeTime struct{ t time.Time }

func (f *fakeTime) now() time.Time { return f.t }

func newFakeTime() *fakeTime { return &fakeTime{t: time.Unix(1_700_000_000, 0)} }

// newDoc returns a document for replica id on a shared fake clock.
func newDoc(t testing.TB, id ReplicaID, ft *fakeTime) *Document {
	t.Helper()
	return NewDocument(id, NewClock(id, ft.now, 0))
}

// must(t)(doc.PutLWW(...)) fails the test on a mutator error.
func must(t testing.TB) func(*Delta, error) *Delta {
	return func(d *Delta, err error) *Delta {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
}

func join(t testing.TB, d *Document, delta *Delta) []Change {
	t.Helper()
	ch, err := d.Join(delta)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// encodeState returns the canonical encoding of d's full state minus the
// replica-specific origin, for comparing replicas.
func stateBytes(t testing.TB, d *Document) []byte {
	t.Helper()
	s := d.State()
	s.from = 1
	b, err := EncodeDelta(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// crdtStateBytes is stateBytes without the applied set (replicas that saw the
// same effects through different deltas may differ there).
func crdtStateBytes(t testing.TB, d *Document) []byte {
	t.Helper()
	s := d.State()
	s.from = 1
	s.full.applied = &CausalContext{}
	b, err := EncodeDelta(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameState(t testing.TB, a, b *Document) bool {
	t.Helper()
	return bytes.Equal(crdtStateBytes(t, a), crdtStateBytes(t, b))
}

func isErr(err, target error) bool { return err != nil && errors.Is(err, target) }
