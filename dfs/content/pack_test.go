package content

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	flatfs "github.com/ipfs/go-ds-flatfs"
)

func rawBlock(seed uint64, n int) blocks.Block {
	data := randBytes(seed, n)
	b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, mustSum(data)))
	return b
}

func openPackT(t *testing.T, dir string) *packStore {
	t.Helper()
	p, err := openPack(dir, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPackReopen: puts and deletes survive a reopen; a deleted block stays deleted, a
// block put again after its deletion is back.
func TestPackReopen(t *testing.T) {
	dir := t.TempDir()
	p := openPackT(t, dir)
	ctx := context.Background()
	var bs []blocks.Block
	for i := range 10 {
		bs = append(bs, rawBlock(uint64(100+i), 1000+i*5000))
	}
	if err := p.PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	p.DeleteBlock(ctx, bs[3].Cid())
	p.DeleteBlock(ctx, bs[4].Cid())
	p.Put(ctx, bs[4])
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	q := openPackT(t, dir)
	for i, b := range bs {
		got, err := q.Get(ctx, b.Cid())
		if i == 3 {
			if err == nil {
				t.Error("a deleted block came back after reopen")
			}
			continue
		}
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Errorf("block %d after reopen: %v", i, err)
		}
	}
}

// TestPackTornTail: a record cut short by a crash (and garbage after it) is dropped at
// open; the records before it are intact and new puts go on after them.
func TestPackTornTail(t *testing.T) {
	dir := t.TempDir()
	p := openPackT(t, dir)
	ctx := context.Background()
	a, b := rawBlock(1, 3000), rawBlock(2, 70000)
	p.PutMany(ctx, []blocks.Block{a, b})
	p.Sync()
	path, off, n, _ := p.locate(b.Cid())
	p.Close()
	if err := os.Truncate(path, off+int64(n)/2); err != nil { // b torn
		t.Fatal(err)
	}
	q := openPackT(t, dir)
	if _, err := q.Get(ctx, a.Cid()); err != nil {
		t.Fatalf("the whole record before the torn one: %v", err)
	}
	if ok, _ := q.Has(ctx, b.Cid()); ok {
		t.Fatal("a torn record is indexed")
	}
	c := rawBlock(3, 5000)
	q.Put(ctx, c)
	q.Sync()
	q.Close()
	r := openPackT(t, dir)
	for _, x := range []blocks.Block{a, c} {
		if got, err := r.Get(ctx, x.Cid()); err != nil || !bytes.Equal(got.RawData(), x.RawData()) {
			t.Fatalf("after the truncation and a new put: %v", err)
		}
	}
}

// TestPackCompaction: deleting most blocks of sealed segments and compacting gives the
// bytes back and keeps every live block readable, before and after a reopen; a
// tombstone still shadows an older segment's copy after compaction.
func TestPackCompaction(t *testing.T) {
	dir := t.TempDir()
	p := openPackT(t, dir)
	p.segMax = 256 << 10
	ctx := context.Background()
	var bs []blocks.Block
	for i := range 40 {
		bs = append(bs, rawBlock(uint64(200+i), 60000))
	}
	for _, b := range bs {
		if err := p.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	p.Sync()
	before := p.DiskBytes()
	for i, b := range bs {
		if i%4 != 0 {
			p.DeleteBlock(ctx, b.Cid())
		}
	}
	freed, err := p.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if freed == 0 || p.DiskBytes() >= before {
		t.Fatalf("compaction freed %d bytes; disk %d -> %d", freed, before, p.DiskBytes())
	}
	check := func(q *packStore) {
		t.Helper()
		for i, b := range bs {
			got, err := q.Get(ctx, b.Cid())
			if i%4 == 0 {
				if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
					t.Fatalf("live block %d: %v", i, err)
				}
			} else if err == nil {
				t.Fatalf("deleted block %d is back", i)
			}
		}
	}
	check(p)
	p.Close()
	check(openPackT(t, dir))
}

// TestMigrateFromFlatfs: a store written by the flatfs version (Dir/blocks) opens with
// every block and pin, the flatfs directory is gone, and a damaged block of the old
// store is left behind (to be fetched again) rather than migrated.
func TestMigrateFromFlatfs(t *testing.T) {
	src := newStore(t, nil, nil)
	data := randBytes(300, 1<<20)
	a := add(t, src, data, "")
	if err := src.Pin(ctxT(t), a.Root, nil); err != nil {
		t.Fatal(err)
	}
	pins, err := os.ReadFile(src.pinLogFile())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ds, err := flatfs.CreateOrOpen(filepath.Join(dir, "blocks"), flatfs.NextToLast(2), false)
	if err != nil {
		t.Fatal(err)
	}
	old := blockstore.NewBlockstore(ds, blockstore.NoPrefix())
	keys, _ := src.bs.inner.AllKeysChan(ctxT(t))
	n := 0
	for c := range keys {
		blk, err := src.bs.inner.Get(ctxT(t), c)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Put(ctxT(t), blk); err != nil {
			t.Fatal(err)
		}
		n++
	}
	ds.Close()
	os.WriteFile(filepath.Join(dir, "pins.log"), pins, 0o600)
	s := newStore(t, nil, func(c *Config) { c.Dir = dir })
	if _, err := os.Stat(filepath.Join(dir, "blocks")); !os.IsNotExist(err) {
		t.Errorf("the flatfs directory is still there: %v", err)
	}
	if u := s.Usage(); u.Blocks != n || u.Pins != 1 || u.PinnedBytes == 0 {
		t.Errorf("after migration: %+v; want %d blocks and the pin", u, n)
	}
	if got := readAll(t, s, a.Root); !bytes.Equal(got, data) {
		t.Fatal("the migrated file differs")
	}
}

// FuzzPackScan: the segment scanner on arbitrary file bytes never reads past the end,
// reports a valid prefix, and only yields records inside it.
func FuzzPackScan(f *testing.F) {
	dir := f.TempDir()
	p, err := openPack(dir, testLog(f))
	if err != nil {
		f.Fatal(err)
	}
	p.Put(context.Background(), rawBlock(1, 100))
	p.DeleteBlock(context.Background(), rawBlock(1, 100).Cid())
	p.Close()
	seg, _ := os.ReadFile(filepath.Join(dir, segName(1)))
	f.Add(seg)
	f.Add([]byte{})
	f.Add(seg[:len(seg)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := scanSegment(bytes.NewReader(b), int64(len(b)), func(r packRecord) {
			if r.end > int64(len(b)) || r.off+int64(r.dataLen) != r.end || len(r.key) == 0 {
				t.Fatalf("record outside the segment: %+v (size %d)", r, len(b))
			}
		})
		if valid < 0 || valid > int64(len(b)) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(b))
		}
	})
}

// TestPinLogTornLine: a pin journal whose last line was cut by a crash opens without
// it; a damaged line before the last is refused with the file and line named.
func TestPinLogTornLine(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, nil, func(c *Config) { c.Dir = dir })
	a := add(t, s, randBytes(400, 300<<10), "")
	b := add(t, s, randBytes(401, 300<<10), "")
	if err := s.Pin(ctxT(t), a.Root, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "pins.log"), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"root":{"/":"` + b.Root.String() + `"},"n":`) // torn
	f.Close()
	s2 := newStore(t, nil, func(c *Config) { c.Dir = dir })
	if ps := s2.Pins(); len(ps) != 1 || !ps[0].Equals(a.Root) {
		t.Fatalf("pins after a torn journal line: %v; want only %s", ps, a.Root)
	}
	if err := s2.Unpin(a.Root); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	os.WriteFile(filepath.Join(dir, "pins.log"), []byte("garbage\n{}\n"), 0o600)
	if _, err := New(context.Background(), Config{Dir: dir, Log: testLog(t)}, nil); err == nil || !strings.Contains(err.Error(), "pins.log line 1") {
		t.Fatalf("a damaged journal line: %v", err)
	}
}
