package content

import (
	"bytes"
	"io"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestCacheClassBound: reads under a class with a 1 MiB bound keep at most 1 MiB of that
// class cached (the least recently used blocks go first), while a read outside the class
// keeps its whole 2 MiB in the node's cache; every read still returns the right bytes.
func TestCacheClassBound(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	read := func(root cid.Cid, class string, limit int64) []byte {
		t.Helper()
		f, err := b.Open(WithCacheClass(ctxT(t), class, limit), root, []peer.ID{hs[0].ID()})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	var files [][]byte
	var roots []cid.Cid
	for i := range 3 {
		d := randBytes(uint64(600+i), 2<<20)
		files = append(files, d)
		roots = append(roots, add(t, a, d, "").Root)
	}
	for i := range 2 {
		if !bytes.Equal(read(roots[i], "/small", 1<<20), files[i]) {
			t.Fatalf("file %d read under the class differs", i)
		}
		if got := b.CacheClassBytes("/small"); got > 1<<20 {
			t.Fatalf("class /small holds %d cached bytes after read %d; bound 1 MiB", got, i)
		}
	}
	if !bytes.Equal(read(roots[2], "", 0), files[2]) {
		t.Fatal("the unclassed read differs")
	}
	if st, _ := b.Stat(ctxT(t), roots[2]); !st.Complete {
		t.Errorf("the unclassed file was evicted: %+v", st)
	}
	if st, _ := b.Stat(ctxT(t), roots[0]); st.Complete {
		t.Errorf("the first file of the bounded class is still whole: %+v", st)
	}
	if got := b.CacheClassBytes("/small"); got == 0 || got > 1<<20 {
		t.Errorf("class /small: %d bytes cached; want 1..1 MiB", got)
	}
}
