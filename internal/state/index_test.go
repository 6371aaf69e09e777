package state

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestIndexCountsCommits: the index starts at 1, rises with every committed local Update
// and remote delta that changed something, per collection; an Update that changes nothing
// and a delta already applied leave it alone.
func TestIndexCountsCommits(t *testing.T) {
	a, pa := openTest(t, t.TempDir(), "a")
	defer a.Close(true)
	b, _ := openTest(t, t.TempDir(), "b")
	defer b.Close(true)
	if a.Index() != 1 || a.Index("x") != 1 {
		t.Fatalf("fresh index = %d, x %d; want 1", a.Index(), a.Index("x"))
	}
	if err := a.Update(func(tx *Tx) error { return tx.Put("x", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if a.Index() != 2 || a.Index("x") != 2 || a.Index("y") != 1 || a.Index("x", "y") != 2 {
		t.Fatalf("after a put in x: index %d, x %d, y %d; want 2, 2, 1", a.Index(), a.Index("x"), a.Index("y"))
	}
	_ = a.Update(func(tx *Tx) error { return nil })
	if a.Index() != 2 {
		t.Fatalf("an empty Update moved the index to %d", a.Index())
	}
	if err := a.Update(func(tx *Tx) error { return tx.Put("y", "k", []byte("w")) }); err != nil {
		t.Fatal(err)
	}
	if a.Index("x") != 2 || a.Index("y") != 3 || a.Index("x", "y") != 3 {
		t.Fatalf("after a put in y: x %d, y %d; want 2, 3", a.Index("x"), a.Index("y"))
	}
	ds := pa.all()
	if err := b.Apply(peer.ID("a"), ds[0]); err != nil {
		t.Fatal(err)
	}
	if b.Index("x") != 2 || b.Index("y") != 1 {
		t.Fatalf("remote delta in x: b's x %d, y %d; want 2, 1", b.Index("x"), b.Index("y"))
	}
	if err := b.Apply(peer.ID("a"), ds[0]); err != nil {
		t.Fatal(err)
	}
	if b.Index() != 2 {
		t.Fatalf("a delta applied twice moved the index to %d", b.Index())
	}
	b.Touch("z")
	if b.Index("z") != 3 || b.Index("x") != 2 {
		t.Fatalf("Touch(z): z %d, x %d; want 3, 2", b.Index("z"), b.Index("x"))
	}
}

// TestWaitIndex: a wait for an index already passed returns at once; a wait on a
// collection wakes on that collection's change and not on another's; an index beyond the
// store's (another node's or run's) returns at once; the context ends a wait.
func TestWaitIndex(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), "a")
	defer s.Close(true)
	put := func(coll string) {
		if err := s.Update(func(tx *Tx) error { return tx.Put(coll, "k", []byte(coll)) }); err != nil {
			t.Error(err)
		}
	}
	ctx := context.Background()
	if got, err := s.WaitIndex(ctx, 0, "x"); got != 1 || err != nil {
		t.Fatalf("WaitIndex(0) = %d, %v; want 1 at once", got, err)
	}
	if got, err := s.WaitIndex(ctx, 99); got != 1 || err != nil {
		t.Fatalf("WaitIndex(99) on a store at 1 = %d, %v; want 1 at once", got, err)
	}
	type res struct {
		idx uint64
		err error
	}
	done := make(chan res, 1)
	go func() {
		idx, err := s.WaitIndex(ctx, 1, "x")
		done <- res{idx, err}
	}()
	put("y") // another collection: the waiter must keep waiting
	select {
	case r := <-done:
		t.Fatalf("waiter on x woke for a change in y: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	put("x")
	select {
	case r := <-done:
		if r.err != nil || r.idx != 3 {
			t.Fatalf("waiter on x = %+v; want index 3", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter on x did not wake for a change in x")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if got, err := s.WaitIndex(cctx, 3, "x"); got != 3 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIndex with nothing happening = %d, %v; want 3 and the deadline", got, err)
	}
}

// BenchmarkWaitIndexWake: from a committed Update to a blocked WaitIndex returning (the
// delay a blocking read adds to seeing a change; a poll every 100 ms adds 50 ms on average).
// Reports wake-ns/op besides the whole round (Update included).
func BenchmarkWaitIndexWake(b *testing.B) {
	s, err := Open(Options{Path: b.TempDir() + "/state.db", Cluster: "c"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Load([]byte("a"), nil); err != nil {
		b.Fatal(err)
	}
	s.Start()
	defer s.Close(true)
	ctx := context.Background()
	woke := make(chan time.Time)
	var wake time.Duration
	for i := 0; i < b.N; i++ {
		idx := s.Index("x")
		go func() {
			_, _ = s.WaitIndex(ctx, idx, "x")
			woke <- time.Now()
		}()
		var t0 time.Time
		_ = s.Update(func(tx *Tx) error {
			t0 = time.Now()
			return tx.Put("x", "k", []byte{byte(i)})
		})
		wake += (<-woke).Sub(t0)
	}
	b.ReportMetric(float64(wake.Nanoseconds())/float64(b.N), "wake-ns/op")
}
