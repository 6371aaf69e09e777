package state

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// makeStateFile writes a state file with a snapshot and a log (as a node leaves it).
func makeStateFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "state.db")
	s, err := Open(Options{Path: p, Cluster: "c", Fresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load([]byte("me"), nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	for i := range 400 {
		if err := s.Update(func(tx *Tx) error {
			return tx.Put("c", fmt.Sprintf("k%03d", i), bytes.Repeat([]byte{byte(i)}, 100))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	// Some log entries after the snapshot.
	s, err = Open(Options{Path: p, Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load([]byte("me"), nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	for i := range 50 {
		_ = s.Update(func(tx *Tx) error { return tx.Put("d", fmt.Sprint(i), []byte("log entry")) })
	}
	if err := s.db.db.Sync(); err != nil {
		t.Fatal(err)
	}
	close(s.stop) // a crash: the persister flushed the log, no final snapshot
	s.wg.Wait()
	s.db.close()
	return p
}

type nopPublisher struct{}

func (nopPublisher) Publish([]byte) {}

// openAndLoad is what a node does at start; it returns the loaded state, encoded.
func openAndLoad(p string) ([]byte, error) {
	s, err := Open(Options{Path: p, Cluster: "c"})
	if err != nil {
		return nil, err
	}
	defer s.db.close()
	if _, err = s.Load([]byte("me"), nopPublisher{}); err != nil {
		return nil, err
	}
	// The stored entries (not the replica's identity, which a new epoch may change).
	var b bytes.Buffer
	for _, coll := range s.doc.Collections() {
		for _, k := range s.doc.Keys(coll) {
			v, _, _ := s.doc.GetLWW(coll, k)
			fmt.Fprintf(&b, "%s/%s=%x\n", coll, k, v)
		}
	}
	return b.Bytes(), nil
}

// inUsePages lists the pages of the file that hold data (branch and leaf), not the two meta
// pages (bbolt falls back to the other meta) nor free pages (never read; the freelist is
// rebuilt from the reachable pages).
func inUsePages(t *testing.T, b []byte) (ids []int, used int) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy.db") // opened writable to load the freelist
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cp, 0o600, boltOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		used = int(tx.Size())
		for id := 2; ; id++ {
			pi, err := tx.Page(id)
			if err != nil || pi == nil {
				return nil
			}
			if pi.Type == "branch" || pi.Type == "leaf" || pi.Type == "freelist" {
				for k := 0; k <= pi.OverflowCount; k++ {
					ids = append(ids, id+k)
				}
			}
			id += pi.OverflowCount
		}
	})
	return ids, used
}

// TestCorruptionMatrix: every kind of damage to the state file is refused at start with a
// CorruptStateError naming the file and the recovery, and the file is left as it was.
func TestCorruptionMatrix(t *testing.T) {
	good := makeStateFile(t, t.TempDir())
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pages, used := inUsePages(t, orig) // the layout of the file as the node left it
	want, err := openAndLoad(good)
	if err != nil {
		t.Fatalf("the undamaged file: %v", err)
	}
	if len(orig) < 28<<10 {
		t.Fatalf("state file of %d bytes is too small for the matrix", len(orig))
	}
	type tc struct {
		name   string
		damage func(b []byte) []byte
		// harmlessOK: the damage may fall in unused bytes of a page (after its last element);
		// then the state must load exactly as before.
		harmlessOK bool
	}
	garbage := func(off int) func(b []byte) []byte {
		return func(b []byte) []byte {
			r := mrand.New(mrand.NewPCG(uint64(off), 7))
			for i := off; i < off+2048 && i < len(b); i++ {
				b[i] = byte(r.Uint32())
			}
			return b
		}
	}
	cases := []tc{
		{"zero bytes", func([]byte) []byte { return nil }, false},
		{"truncated to 200,000 bytes or half", func(b []byte) []byte { return b[:min(200000, len(b)/2)] }, false},
		{"last used page cut", func(b []byte) []byte { return b[:used-4096] }, false},
		{"one byte", func(b []byte) []byte { return b[:1] }, false},
	}
	for _, off := range []int{16 << 10, 20 << 10, 24 << 10} {
		in := false
		for _, id := range pages {
			in = in || (off/4096 == id)
		}
		if in {
			cases = append(cases, tc{fmt.Sprintf("2 KiB garbage at %d KiB", off>>10), garbage(off), false})
		}
	}
	r := mrand.New(mrand.NewPCG(42, 42))
	for i := range 30 {
		id := pages[r.IntN(len(pages))]
		at := id*4096 + r.IntN(4096)
		n := 1 + r.IntN(16)
		cases = append(cases, tc{fmt.Sprintf("random damage %d: page %d, %d bytes at %d", i, id, n, at), func(b []byte) []byte {
			for k := at; k < at+n && k < len(b); k++ {
				b[k] ^= byte(1 + r.IntN(255))
			}
			return b
		}, true})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			damaged := c.damage(bytes.Clone(orig))
			if err := os.WriteFile(p, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			before := sha256.Sum256(damaged)
			got, err := openAndLoad(p)
			if err == nil && c.harmlessOK && bytes.Equal(got, want) {
				t.Logf("the damage left every stored entry intact (unused bytes, or a key or a meta value that changes nothing)")
				return
			}
			var ce *CorruptStateError
			if !errors.As(err, &ce) || ce.Path != p {
				t.Fatalf("start on a damaged file: err = %v; want a CorruptStateError naming %s", err, p)
			}
			after, _ := os.ReadFile(p)
			if sha256.Sum256(after) != before {
				t.Fatal("the damaged file was modified")
			}
		})
	}
}

// TestMissingFileIsFresh: a missing state file (moved aside to recover) starts empty; an
// empty file in a new data dir is fine too.
func TestMissingFileIsFresh(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	if _, err := openAndLoad(p); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	p2 := filepath.Join(t.TempDir(), "state.db")
	os.WriteFile(p2, nil, 0o600)
	s, err := Open(Options{Path: p2, Cluster: "c", Fresh: true})
	if err != nil {
		t.Fatalf("empty file in a fresh data dir: %v", err)
	}
	s.db.close()
}
