package content

import (
	"bytes"
	"context"
	"testing"

	"github.com/ipfs/go-cid"
)

// FuzzDecodeWant: the bulk protocol's request decoder on untrusted bytes.
func FuzzDecodeWant(f *testing.F) {
	good, _ := encodeWant([]cid.Cid{cid.NewCidV1(cid.Raw, mustSum([]byte("x")))})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := decodeWant(b)
		if err == nil && (len(cs) == 0 || len(cs) > maxWant) {
			t.Fatalf("accepted %d CIDs", len(cs))
		}
	})
}

// FuzzDecodeBlockFrame: a response frame must never yield a block that does not match
// the CID asked for.
func FuzzDecodeBlockFrame(f *testing.F) {
	data := []byte("block")
	want := cid.NewCidV1(cid.Raw, mustSum(data))
	f.Add(append([]byte{frameBlock}, data...))
	f.Add([]byte{frameMissing})
	f.Add([]byte{7, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		blk, err := decodeBlockFrame(b, want)
		if err == nil && blk != nil && !bytes.Equal(blk.RawData(), data) {
			t.Fatal("accepted a block that does not match its CID")
		}
	})
}

// FuzzImportCAR: CAR input never panics, never exceeds its bound, and every stored block
// matches its CID.
func FuzzImportCAR(f *testing.F) {
	s := newStore(f, nil, func(c *Config) { c.CacheBytes = -1 })
	a, _ := s.Add(context.Background(), bytes.NewReader(randBytes(60, 300<<10)), AddOptions{})
	var car bytes.Buffer
	s.ExportCAR(context.Background(), a.Root, &car, nil)
	s.Release(a.Root)
	s.GC(context.Background(), nil)
	f.Add(car.Bytes())
	f.Add(car.Bytes()[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		roots, err := s.ImportCAR(context.Background(), bytes.NewReader(b), 1<<20)
		if err == nil {
			for _, r := range roots {
				if ok, _ := s.Has(context.Background(), r); !ok {
					t.Fatalf("import accepted root %s without its DAG", r)
				}
			}
		}
		for _, r := range roots {
			s.Release(r)
		}
		s.GC(context.Background(), nil)
	})
}
