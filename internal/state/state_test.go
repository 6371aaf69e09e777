package state

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/crdt"
)

type pubs struct {
	mu sync.Mutex
	b  [][]byte
}

func (p *pubs) Publish(b []byte) { p.mu.Lock(); p.b = append(p.b, b); p.mu.Unlock() }

func (p *pubs) all() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.b...)
}

func openTest(t *testing.T, dir, seed string) (*Store, *pubs) {
	t.Helper()
	s, err := Open(Options{Path: filepath.Join(dir, "state.db"), Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	p := &pubs{}
	if _, err := s.Load([]byte(seed), p); err != nil {
		t.Fatal(err)
	}
	s.Start()
	return s, p
}

// TestUpdatePublishesOneDeltaAndWatchSeesRemote: an Update with several changes publishes
// one delta; applying it on another store reaches that store's watchers in order, after
// commit (the watcher can read the store), and only for the collections it asked for.
func TestUpdatePublishesOneDeltaAndWatchSeesRemote(t *testing.T) {
	a, pa := openTest(t, t.TempDir(), "a")
	defer a.Close(true)
	b, _ := openTest(t, t.TempDir(), "b")
	defer b.Close(true)

	type seen struct {
		coll, key string
		val       string
	}
	got := make(chan seen, 16)
	b.Watch(func(cs []crdt.Change) {
		for _, c := range cs {
			var v []byte
			b.View(func(vw *View) { v, _, _ = vw.GetLWW(c.Collection, c.Key) }) // no deadlock: no lock held
			got <- seen{c.Collection, c.Key, string(v)}
		}
	}, "x")

	if err := a.Update(func(tx *Tx) error {
		if err := tx.Put("x", "k1", []byte("v1")); err != nil {
			return err
		}
		if err := tx.Put("y", "k2", []byte("v2")); err != nil {
			return err
		}
		return tx.Put("x", "k3", []byte("v3"))
	}); err != nil {
		t.Fatal(err)
	}
	ds := pa.all()
	if len(ds) != 1 {
		t.Fatalf("published %d deltas; want 1 for one Update", len(ds))
	}
	if err := b.Apply(peer.ID("a"), ds[0]); err != nil {
		t.Fatal(err)
	}
	want := []seen{{"x", "k1", "v1"}, {"x", "k3", "v3"}}
	for i, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("change %d = %+v; want %+v", i, g, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watcher not called for %+v", w)
		}
	}
	select {
	case g := <-got:
		t.Fatalf("unexpected change %+v (collection y is not watched; local changes are not remote)", g)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestPersistAcrossRestart: what an Update wrote is there after a clean restart.
func TestPersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir, "a")
	if err := s.Update(func(tx *Tx) error { return tx.Put("x", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	s2, _ := openTest(t, dir, "a")
	defer s2.Close(true)
	var v []byte
	s2.View(func(vw *View) { v, _, _ = vw.GetLWW("x", "k") })
	if string(v) != "v" {
		t.Fatalf("after restart x/k = %q; want v", v)
	}
}

// TestCodecLimits: oversized and malformed records are refused by the record codec.
func TestCodecLimits(t *testing.T) {
	type rec struct {
		A string    `cbor:"1,keyasint"`
		T time.Time `cbor:"2,keyasint"`
	}
	at := time.Unix(1700000000, 123456789).UTC()
	b, err := Encode(rec{A: "x", T: at})
	if err != nil {
		t.Fatal(err)
	}
	var r rec
	if err := Decode(b, &r); err != nil || r.A != "x" || !r.T.Equal(at) {
		t.Fatalf("round trip: %v %+v; want x at %v (nanoseconds kept)", err, r, at)
	}
	if _, err := Encode(rec{A: string(make([]byte, MaxRecordBytes))}); err == nil {
		t.Fatal("oversized record encoded")
	}
	if err := Decode(make([]byte, MaxRecordBytes+1), &r); err == nil {
		t.Fatal("oversized input decoded")
	}
	if err := Decode([]byte{0xff, 0x00}, &r); err == nil {
		t.Fatal("garbage decoded")
	}
}
