package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAddOpenSeek(t *testing.T) {
	s := newStore(t, nil, nil)
	data := randBytes(1, 3<<20+12345)
	a := add(t, s, data, "")
	if a.Root.Version() != 1 || a.Root.Type() != cid.DagProtobuf {
		t.Errorf("root %s: want a CIDv1 dag-pb root", a.Root)
	}
	if a.Size != int64(len(data)) {
		t.Errorf("Size %d; want %d", a.Size, len(data))
	}
	// 13 chunks of 256 KiB (raw leaves) + the root.
	if a.Blocks != 14 {
		t.Errorf("Blocks %d; want 14 (13 raw leaves and a root)", a.Blocks)
	}
	if got := readAll(t, s, a.Root); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
	}
	f, err := s.Open(ctxT(t), a.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != int64(len(data)) {
		t.Errorf("File.Size %d; want %d", f.Size(), len(data))
	}
	for _, off := range []int64{0, 1, 262143, 262144, 1 << 20, int64(len(data)) - 10} {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d): %v", off, err)
		}
		buf := make([]byte, 10)
		if _, err := io.ReadFull(f, buf); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(buf, data[off:off+10]) {
			t.Errorf("at %d: got %x want %x", off, buf, data[off:off+10])
		}
	}
	// Small file: one raw block.
	small := add(t, s, []byte("hello"), "")
	if small.Root.Type() != cid.Raw || small.Blocks != 1 {
		t.Errorf("small file: root %s (%d blocks); want one raw block", small.Root, small.Blocks)
	}
	if got := readAll(t, s, small.Root); string(got) != "hello" {
		t.Errorf("small file read %q", got)
	}
	empty := add(t, s, nil, "")
	if got := readAll(t, s, empty.Root); len(got) != 0 {
		t.Errorf("empty file read %d bytes", len(got))
	}
}

func TestBadChunker(t *testing.T) {
	s := newStore(t, nil, nil)
	for _, c := range []string{"size-0", "size-x", "rabin-1-2-3x", "size-9999999", "fixed"} {
		_, err := s.Add(ctxT(t), strings.NewReader("x"), AddOptions{Chunker: c})
		if !errors.Is(err, ErrBadChunker) || !strings.Contains(err.Error(), "buzhash") {
			t.Errorf("chunker %q: err %v; want ErrBadChunker naming the valid ones", c, err)
		}
	}
	if u := s.Usage(); u.Blocks != 0 {
		t.Errorf("a refused add stored %d blocks", u.Blocks)
	}
}

func TestDedup(t *testing.T) {
	s := newStore(t, nil, nil)
	data := randBytes(2, 2<<20)
	a := add(t, s, data, "")
	u1 := s.Usage()
	b := add(t, s, data, "")
	if a.Root != b.Root {
		t.Fatalf("same content, roots %s and %s", a.Root, b.Root)
	}
	if u2 := s.Usage(); u2.UsedBytes != u1.UsedBytes || u2.Blocks != u1.Blocks {
		t.Errorf("second add of the same content grew the store: %+v -> %+v", u1, u2)
	}
	// A file whose first 1 MiB is shared stores only its new chunks.
	c := add(t, s, append(append([]byte(nil), data[:1<<20]...), randBytes(3, 1<<20)...), "")
	u3 := s.Usage()
	if grew := u3.UsedBytes - u1.UsedBytes; grew > 1<<20+4096 {
		t.Errorf("file sharing 4 of its 8 chunks added %d bytes; want about 1 MiB", grew)
	}
	_ = c
}

func TestBuzhashDedupAfterInsert(t *testing.T) {
	s := newStore(t, nil, nil)
	data := randBytes(4, 4<<20)
	a := add(t, s, data, ChunkerBuzhash)
	u1 := s.Usage()
	// Insert 100 bytes near the start: fixed chunking would shift every chunk; buzhash
	// re-synchronises after the insert.
	edited := append(append(append([]byte(nil), data[:1000]...), randBytes(5, 100)...), data[1000:]...)
	b := add(t, s, edited, ChunkerBuzhash)
	if a.Root == b.Root {
		t.Fatal("different content, same root")
	}
	grew := s.Usage().UsedBytes - u1.UsedBytes
	if grew > 1<<20 {
		t.Errorf("buzhash: a 100-byte insert added %d bytes; want at most about one chunk (<1 MiB)", grew)
	}
	if got := readAll(t, s, b.Root); !bytes.Equal(got, edited) {
		t.Fatal("buzhash file read back differs")
	}
	// The same edit with fixed chunks re-stores nearly everything.
	s2 := newStore(t, nil, nil)
	add(t, s2, data, "")
	f1 := s2.Usage().UsedBytes
	add(t, s2, edited, "")
	if fixedGrew := s2.Usage().UsedBytes - f1; fixedGrew < 3<<20 {
		t.Errorf("fixed chunks: the insert added only %d bytes; the test does not tell buzhash from fixed", fixedGrew)
	}
}

func TestGCKeepsLeasedAndPinned(t *testing.T) {
	now := timeNow()
	s := newStore(t, nil, func(c *Config) { c.Clock = now.Now; c.LeaseTTL = 10 * 60e9 })
	ctx := ctxT(t)
	leased := add(t, s, randBytes(6, 600<<10), "")
	pinned := add(t, s, randBytes(7, 600<<10), "")
	released := add(t, s, randBytes(8, 600<<10), "")
	kept := add(t, s, randBytes(9, 600<<10), "")
	if err := s.Pin(ctx, pinned.Root, nil); err != nil {
		t.Fatal(err)
	}
	s.Release(released.Root)
	s.Release(kept.Root)
	freed, err := s.GC(ctx, func(c cid.Cid) bool { return c.Equals(kept.Root) })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a    Added
		want bool
	}{{"leased", leased, true}, {"pinned", pinned, true}, {"released", released, false}, {"kept", kept, true}} {
		has, err := s.Has(ctx, c.a.Root)
		if err != nil {
			t.Fatal(err)
		}
		if has != c.want {
			t.Errorf("after GC %s file present=%v; want %v", c.name, has, c.want)
		}
	}
	if freed < 600<<10 {
		t.Errorf("GC freed %d bytes; want the released file's %d", freed, 600<<10)
	}
	// The lease expires with the clock: then GC takes the leased file too.
	now.Advance(11 * 60e9)
	if _, err := s.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if has, _ := s.Has(ctx, leased.Root); has {
		t.Error("an expired lease still protected its blocks")
	}
	if has, _ := s.Has(ctx, pinned.Root); !has {
		t.Error("GC deleted a pinned file")
	}
	// Unpin: the blocks become cache, and GC removes them.
	if err := s.Unpin(pinned.Root); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(pinned.Root); !errors.Is(err, ErrNotPinned) {
		t.Errorf("second Unpin: %v; want ErrNotPinned", err)
	}
	s.GC(ctx, nil)
	if u := s.Usage(); u.Blocks != 0 || u.UsedBytes != 0 {
		t.Errorf("after unpin and GC: %+v; want an empty store", u)
	}
}

func TestCacheBound(t *testing.T) {
	s := newStore(t, nil, func(c *Config) { c.CacheBytes = 1 << 20 })
	for i := range 4 {
		a := add(t, s, randBytes(uint64(20+i), 512<<10), "")
		s.Release(a.Root)
	}
	if u := s.Usage(); u.CacheBytes > 1<<20 || u.UsedBytes > 1<<20 {
		t.Errorf("cache over its 1 MiB bound: %+v", u)
	}
}

func TestPinsPersist(t *testing.T) {
	dir := t.TempDir()
	open := func() *Store {
		s, err := New(context.Background(), Config{Dir: dir, CacheBytes: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	a, err := s.Add(ctxT(t), bytes.NewReader(randBytes(10, 1<<20)), AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctxT(t), a.Root, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
	defer s.Close()
	if p := s.Pins(); len(p) != 1 || p[0] != a.Root {
		t.Fatalf("pins after reopen %v; want [%s]", p, a.Root)
	}
	st, err := s.Stat(ctxT(t), a.Root)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Complete || st.Pins != 1 || st.Cached || st.Size != 1<<20 {
		t.Errorf("stat after reopen %+v", st)
	}
	// With no cache at all, an unpinned store keeps nothing.
	if err := s.Unpin(a.Root); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u.Blocks != 0 {
		t.Errorf("unpinned blocks stayed with CacheBytes<0: %+v", u)
	}
	os.WriteFile(filepath.Join(dir, "pins.json"), []byte("{oops"), 0o600)
	s.Close()
	if _, err := New(context.Background(), Config{Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "pins.json") {
		t.Errorf("damaged pins file: %v; want an error naming it", err)
	}
}

func TestDiskFull(t *testing.T) {
	s := newStore(t, nil, func(c *Config) { c.Capacity = 1 << 20 })
	data := randBytes(11, 3<<20)
	_, err := s.Add(ctxT(t), bytes.NewReader(data), AddOptions{})
	var de *diskFullError
	if !errors.Is(err, ErrDiskFull) || !errors.As(err, &de) {
		t.Fatalf("Add of 3 MiB into 1 MiB: %v; want ErrDiskFull", err)
	}
	if de.Need != int64(len(data)) || de.Missing < 2<<20 || de.Missing > int64(len(data)) || !strings.Contains(err.Error(), "bytes missing") {
		t.Errorf("disk full error %q (%+v); want the file's %d bytes needed and about 2 MiB missing", err, de, len(data))
	}
	t.Logf("the error: %v", err)
	if u := s.Usage(); u.Blocks != 0 || u.LeasedBytes != 0 {
		t.Errorf("a failed add left %+v", u)
	}
	// A file that fits still goes in.
	add(t, s, randBytes(12, 512<<10), "")
}

func TestCorruptBlockDetected(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newStore(t, nil, func(c *Config) { c.Metrics = reg })
	data := randBytes(13, 1<<20)
	a := add(t, s, data, "")
	links, err := s.links(ctxT(t), a.Root)
	if err != nil || len(links) != 4 {
		t.Fatalf("links %v %v", links, err)
	}
	corruptBlock(t, s, links[2])
	f, err := s.Open(ctxT(t), a.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(f)
	f.Close()
	if err == nil {
		t.Fatal("read a file with a corrupt block and no holder: no error")
	}
	if got := testutil.ToFloat64(s.m.corrupt); got != 1 {
		t.Errorf("corrupt_blocks_total %v; want 1", got)
	}
	if has, _ := s.bs.inner.Has(ctxT(t), links[2]); has {
		t.Error("the corrupt block is still on disk")
	}
}

// corruptBlock flips a byte of c's data in its segment file.
func corruptBlock(t *testing.T, s *Store, c cid.Cid) {
	t.Helper()
	path, off, n, ok := s.pack.locate(c)
	if !ok {
		t.Fatalf("block %s not found in the pack store", c)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off+int64(n/2)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off+int64(n/2)); err != nil {
		t.Fatal(err)
	}
}

var _ = peer.ID("")
