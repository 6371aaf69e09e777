package state

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStaleReplicaAfterRestore: a state file restored from a backup taken after a clean
// stop resumes its replica; as soon as a peer shows it holds later deltas of that replica
// (anti-entropy), the store continues as a new replica with its state intact, and a restart
// keeps that new replica. A clean restart without a restore keeps the replica (quota rights
// stay with it).
func TestStaleReplicaAfterRestore(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.db")
	open := func() *Store {
		s, err := Open(Options{Path: p, Cluster: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load([]byte("me"), nopPublisher{}); err != nil {
			t.Fatal(err)
		}
		s.Start()
		return s
	}
	s := open()
	_ = s.Update(func(tx *Tx) error { return tx.Put("c", "a", []byte("1")) })
	id1 := s.ReplicaID()
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s = open()
	if s.ReplicaID() != id1 {
		t.Fatal("a clean restart drew a new replica")
	}
	_ = s.Update(func(tx *Tx) error { return tx.Put("c", "b", []byte("2")) })
	_ = s.Update(func(tx *Tx) error { return tx.Put("c", "c", []byte("3")) })
	peerView := s.Version() // what a peer that got every delta holds
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, backup, 0o600); err != nil { // restore the older file
		t.Fatal(err)
	}
	s = open()
	if s.ReplicaID() != id1 {
		t.Fatal("the restored file (clean) should resume the same replica until proven stale")
	}
	if _, err := s.MissingFor(peerView); err != nil {
		t.Fatal(err)
	}
	id2 := s.ReplicaID()
	if id2 == id1 {
		t.Fatal("a peer holding later deltas of this replica did not make the store continue as a new replica")
	}
	var v []byte
	s.View(func(vw *View) { v, _, _ = vw.GetLWW("c", "a") })
	if string(v) != "1" {
		t.Fatalf("state lost in the switch: c/a = %q", v)
	}
	_ = s.Update(func(tx *Tx) error { return tx.Put("c", "d", []byte("4")) }) // a write as the new replica
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close(true)
	if s.ReplicaID() != id2 {
		t.Fatal("the restart after the switch did not keep the new replica")
	}
}
