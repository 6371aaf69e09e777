package state

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestApplyGossipObservesDelay: a gossiped delta that changes the store reports the time
// from its author's HLC timestamp to its arrival, measured with the receiver's clock; the
// same delta again (no change) reports nothing; an author clock ahead gives 0, not a
// negative delay; plain Apply (anti-entropy) reports nothing.
func TestApplyGossipObservesDelay(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	author, pa := openTest(t, t.TempDir(), "a")
	defer author.Close(true)
	recvNow := base
	b, err := Open(Options{Path: filepath.Join(t.TempDir(), "state.db"), Cluster: "c", Now: func() time.Time { return recvNow }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load([]byte("b"), &pubs{}); err != nil {
		t.Fatal(err)
	}
	b.Start()
	defer b.Close(true)
	var got []time.Duration
	b.ObserveGossipDelay(func(d time.Duration) { got = append(got, d) })

	put := func(k string) []byte {
		t.Helper()
		if err := author.Update(func(tx *Tx) error { return tx.Put("x", k, []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		ds := pa.all()
		return ds[len(ds)-1]
	}
	d1 := put("k1")
	// The author's wall clock is the real one: set the receiver 1.5 s after it.
	recvNow = time.Now().Add(1500 * time.Millisecond)
	if err := b.ApplyGossip(peer.ID("a"), d1); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] < 1500*time.Millisecond || got[0] > time.Minute {
		t.Fatalf("delays %v; want one of about 1.5 s", got)
	}
	if err := b.ApplyGossip(peer.ID("a"), d1); err != nil || len(got) != 1 {
		t.Fatalf("duplicate delta: err %v, delays %v; want no new observation", err, got)
	}
	// The receiver's clock 300 ms behind the author (within the HLC's allowed offset):
	// clamped to 0.
	recvNow = time.Now().Add(-300 * time.Millisecond)
	if err := b.ApplyGossip(peer.ID("a"), put("k2")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != 0 {
		t.Fatalf("delays %v; want a second one of 0 (skew clamped)", got)
	}
	if err := b.Apply(peer.ID("a"), put("k3")); err != nil || len(got) != 2 {
		t.Fatalf("anti-entropy apply: err %v, delays %v; want no observation", err, got)
	}
}
